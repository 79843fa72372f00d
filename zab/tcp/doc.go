// Package tcp is the production zab.Transport: authenticated, length-prefixed,
// versioned msgpack frames over TCP, encrypted when a secret key is set.
//
// # Connections
//
// Every node dials one persistent outbound connection per peer, lazily (on the
// first message queued for it), and only writes on it; the acceptor only reads
// after the handshake. So a pair of nodes talks over two connections, one per
// direction. This keeps each connection single-writer and makes dial races
// impossible (no tie-break on who owns the pair's connection), at the price of
// one extra socket per pair. Per-pair ordering follows: one writer goroutine
// per peer writes frames in queue order on one connection, and the acceptor
// keeps only the newest inbound connection of each peer, waiting for the old
// connection's reader to stop before reading the new one.
//
// A broken connection is redialed with exponential backoff and jitter
// (Config.ReconnectBackoffMin..Max); messages in a batch whose dial or write
// failed are dropped and counted (Stats.SendDrops), as zab.Transport allows.
// SetPeer with a new address makes the writer redial there at once.
//
// # Wire format
//
// Every frame is an 8-byte header followed by a msgpack payload:
//
//	offset 0..1  magic "ZB" (0x5a 0x42)
//	offset 2     protocol version (Version, currently 2)
//	offset 3     frame kind (KindHello .. KindSealed)
//	offset 4..7  payload length in bytes, big-endian uint32
//	offset 8..   payload
//
// The header is checked (magic, version, kind, length ≤ Config.MaxFrameSize, or
// ≤ 1 KiB during the handshake) before the payload buffer is allocated. A
// KindBatch payload is a msgpack array (always the 5-byte array32 form) of
// zab.Message, each a msgpack map keyed by the struct's msgpack tags, empty
// fields left out, ints in their smallest form: the bytes the msgpack
// library's reflection wrote for it, now written and read by hand
// (msgcodec.go; a field added to zab.Message needs its line there, which
// TestMessageCodecMatchesReflection enforces). Unknown fields from newer
// peers are ignored. Before decoding, every payload
// is walked once to check that it is exactly one msgpack value whose length
// prefixes fit in the bytes present and whose nesting is shallow: msgpack
// v5.4.1 would otherwise preallocate a slice of whatever length a peer claims.
//
// # Handshake
//
// Before any KindBatch frame the dialer D and the acceptor A exchange:
//
//	D → A  hello   {cluster, D, A, nonce nD (32 bytes), D has key, instance}
//	A → D  welcome {A, nonce nA (32 bytes), A has key, MAC_A}
//	D → A  auth    {MAC_D}
//	A → D  accept  {}
//
// With Config.SecretKey set, MAC_X = HMAC-SHA256(Kh, "coord zab/tcp v2 handshake"
// || role X || len(cluster) || cluster || D || A || nD || nA), where Kh =
// HKDF-SHA256(SecretKey, no salt, info "coord zab/tcp v2 handshake"): each side proves
// the key over the other side's fresh nonce, the roles differ so a MAC cannot
// be reflected, and the ids and cluster are bound. A checks the hello (cluster,
// that D is asking for A, D's id) and D's MAC; D checks that it reached the id
// it dialed and A's MAC. Without a key the same frames are exchanged with empty
// MACs (so ids, cluster and version are still checked). A side that has a key
// refuses a side that has none, and vice versa. Any failure sends a refuse
// frame with the reason (best effort), logs it on both sides and closes.
//
// The instance is random per Transport. A refuses (ErrDuplicateID, logged
// as an error, counted in Stats.DuplicateIDs) a dialer whose id another
// instance holds a connection under that sent a frame within
// HandshakeTimeout: two live processes configured with one id. The refusal
// reaches the dialer wrapping ErrDuplicateID, and Transport.DuplicateID
// reports it there: that process is the duplicate (coord's Join fails with
// it). A restarted peer's old connection is closed or silent, so the new
// one replaces it.
//
// That refusal needs a peer that heard from the first process recently.
// Transport.ProbeSameID does not: it sends a hello from this id to this id
// to an address (one gossip reports for this id), and a live transport of
// the cluster with that id refuses it with ErrDuplicateID, its instance,
// its start time and whether it called SetJoined (and counts it in
// Stats.DuplicateIDs). Nothing listening, another id, or this process
// itself answering means no other live process there. With a SecretKey the
// answer carries an HMAC, under the handshake's key, of the prober's fresh
// nonce and the answer's fields; an answer without a valid one is refused
// with ErrAuth, so only a process that knows the key can make the prober
// yield (a process of a version before that proof cannot either: the tcp
// refusal above still separates the two).
// Transport.StartedAfter orders two processes by start time, then
// instance, the same way on both sides.
// Connections still in the handshake are bounded in all
// (MaxPendingHandshakes) and per source IP (MaxPendingHandshakesPerHost),
// each for at most HandshakeTimeout.
//
// After the handshake the acceptor knows D's id and drops (and counts) every
// message whose From is not D or whose To is not A. A malformed, oversized,
// wrong-version or non-batch frame closes the connection with a logged reason;
// nothing from that frame is delivered.
//
// # Encryption
//
// With Config.SecretKey set, every frame after the handshake is a KindSealed
// frame: the KindBatch payload sealed with AES-256-GCM, the frame header as
// additional data, and a 16-byte tag (SealOverhead) appended. Its key is
//
//	HKDF-SHA256(SecretKey, salt nD || nA,
//	            info "coord zab/tcp v2 frames" || direction || len(cluster) || cluster || D || A)
//
// so both sides' fresh nonces make new keys for every connection, and each
// direction has its own key (only the dialer's is used: the acceptor never
// writes after the handshake). The 96-bit GCM nonce is the count of frames
// sealed before on the connection and is not sent; the acceptor counts too,
// so a frame that was changed, replayed, reordered, dropped or not sealed
// fails to open (ErrOpen): the connection is closed, nothing of the frame
// is delivered, and it is counted in Stats.AuthFailures and
// Stats.BadFrames. The nonces are authenticated by the proofs, so a
// man-in-the-middle without the key cannot steer the keys. The sender packs
// at most MaxFrameSize - SealOverhead payload bytes so that a sealed frame
// stays within MaxFrameSize. Keys come from the SecretKey alone (no
// Diffie-Hellman): whoever learns the SecretKey can decrypt recorded
// traffic, so there is no forward secrecy.
//
// coord derives memberlist's gossip key from the same SecretKey with
// another label (internal/gossip), so gossip and replication share no key.
// Compatibility: older coord (label "coord zab/tcp v1") used the SecretKey
// itself for the proofs and sent frames in the clear; a keyed older node and
// a keyed newer node refuse each other's proofs (ErrAuth). The frame header
// Version is unchanged. Without a key nothing changed: the
// handshake is as before and frames are plain KindBatch frames that anyone
// on the path can read.
//
// # Goroutines
//
// A Transport runs, and Close stops and waits for:
//
//   - one accept loop (ends when Close closes the listener);
//   - one writer per peer added by SetPeer (ends on RemovePeer or Close, which
//     cancel its context and close its connection to abort a dial, handshake
//     or write in progress);
//   - one watcher per established outbound connection, blocked in Read to
//     notice the acceptor closing (ends when the connection is closed by
//     either side);
//   - one reader per accepted connection, running the handshake and then
//     reading frames (ends on a read error, which Close, RemovePeer or a newer
//     connection from the same peer cause by closing the connection).
//
// Close closes the Receive channel only after all of them have returned, so
// no send on a closed channel can happen.
package tcp
