package admin_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/coord/admin"
)

func ExampleNew() {
	cfg := coord.LocalConfig(1)
	cfg.Voters = []uint64{1}
	node, err := coord.Join(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer node.Close(context.Background())

	// Mount the handler on the service's own mux, under a prefix.
	mux := http.NewServeMux()
	mux.Handle("/coord/", http.StripPrefix("/coord", admin.New(node, admin.Options{})))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/coord/readyz")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode)
	fmt.Print(string(body))
	// Output:
	// 200
	// {
	//   "status": "ok",
	//   "id": 1,
	//   "role": "LEADING",
	//   "running": true,
	//   "serving": true,
	//   "leader": 1
	// }
}
