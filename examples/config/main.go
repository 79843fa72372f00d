// Command config is one node of a coord cluster that follows a shared,
// typed configuration (recipes.Config): type key=value on any node, or let
// -every change it, and every node prints the new value. Run three, one per
// terminal (or all three with examples/run.sh config -every 3s):
//
//	go run ./examples/config -id 1
//	go run ./examples/config -id 2
//	go run ./examples/config -id 3
//
// then type, in any of them: color=green (or workers=8).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coord-dev/coord/coord"
	"github.com/coord-dev/coord/examples/demo"
	"github.com/coord-dev/coord/recipes"
)

// Settings is the configuration the nodes share, stored as JSON in one znode.
type Settings struct {
	Color   string `json:"color"`
	Workers int    `json:"workers"`
	SetBy   uint64 `json:"set_by"` // the node that made the last change
}

func main() {
	me := demo.Flags() // -id, -seeds, -data
	every := flag.Duration("every", 0, "also change the color this often (0: only when you type key=value)")
	me.Run(func(ctx context.Context, node *coord.Node) error {
		// The Config follows the znode through the node's default session,
		// and through a new one if that session is lost.
		settings, err := recipes.NewConfig[Settings](ctx, recipes.NodeSessions(node), "/config/settings", recipes.ConfigOptions[Settings]{})
		if err != nil {
			return err
		}
		defer settings.Close()
		updates, unsubscribe := settings.Subscribe()
		defer unsubscribe()

		changes := make(chan string)
		go readLines(changes)
		me.Printf("type key=value to change the settings (keys: color, workers)")
		var tick <-chan time.Time
		if *every > 0 {
			t := time.NewTicker(*every)
			defer t.Stop()
			tick = t.C
		}
		colors := []string{"red", "green", "blue", "yellow"}
		for {
			var change func(*Settings) error
			select {
			case <-ctx.Done():
				return ctx.Err()
			case v := <-updates:
				if !v.Exists {
					me.Printf("settings not set yet")
				} else {
					me.Printf("settings color=%s workers=%d (set by node %d; version %d)", v.V.Color, v.V.Workers, v.V.SetBy, v.Stat.Version)
				}
				continue
			case line := <-changes:
				change = func(s *Settings) error { return set(s, line) }
			case <-tick:
				change = func(s *Settings) error {
					s.Color = colors[(slices.Index(colors, s.Color)+1)%len(colors)]
					return nil
				}
			}
			// A compare-and-set: if another node changed the settings in
			// between, Update reads them again and re-applies the change.
			_, _, err := settings.Update(ctx, func(old Settings) (Settings, error) {
				err := change(&old)
				old.SetBy = me.ID()
				return old, err
			})
			if err != nil {
				me.Printf("not changed: %v", err)
			}
		}
	})
}

// set applies one key=value line to s.
func set(s *Settings, line string) error {
	key, value, _ := strings.Cut(strings.TrimSpace(line), "=")
	switch key {
	case "color":
		s.Color = value
	case "workers":
		n, err := strconv.Atoi(value)
		if err != nil {
			return fmt.Errorf("workers=%q: %w", value, err)
		}
		s.Workers = n
	default:
		return fmt.Errorf("%q: want color=NAME or workers=N", line)
	}
	return nil
}

// readLines sends the non-empty lines typed on stdin.
func readLines(out chan<- string) {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			out <- line
		}
	}
}
