// Command go-tlog-verify is Custodia's independent check of custodia-tlog's output: it
// verifies, with Go's own golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, a
// directory written by `cargo run -p custodia-tlog --example write_go_fixture -- DIR`.
//
//	go-tlog-verify verify DIR      exit 0 if everything verifies, 1 otherwise
//	go-tlog-verify flip FILE OFF   flip bit 0 of byte OFF of FILE (OFF may be "mid" or "last")
//	go-tlog-verify vectors         print reference tree hashes and proofs (testdata)
//
// Everything this program decodes itself uses strict, canonical base64, and it also
// insists that note signature lines are canonical base64, because Go's note package
// tolerates non-zero padding bits and a single flipped bit there would go unnoticed.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var b64 = base64.StdEncoding.Strict()

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "verify":
		if len(os.Args) != 3 {
			usage()
		}
		err = verify(os.Args[2])
	case "flip":
		if len(os.Args) != 4 {
			usage()
		}
		err = flip(os.Args[2], os.Args[3])
	case "vectors":
		err = vectors()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-tlog-verify:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go-tlog-verify verify DIR | flip FILE OFFSET | vectors")
	os.Exit(2)
}

func read(dir, name string) []byte {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-tlog-verify:", err)
		os.Exit(1)
	}
	return b
}

type checkpoint struct {
	origin string
	tree   tlog.Tree
	text   string
}

// openCheckpoint opens a signed checkpoint with the log key and parses its text strictly.
func openCheckpoint(msg []byte, origin string, v note.Verifier) (*checkpoint, *note.Note, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, nil, fmt.Errorf("note.Open: %w", err)
	}
	for _, s := range append(append([]note.Signature{}, n.Sigs...), n.UnverifiedSigs...) {
		raw, err := b64.DecodeString(s.Base64)
		if err != nil || b64.EncodeToString(raw) != s.Base64 {
			return nil, nil, fmt.Errorf("signature by %s is not canonical base64", s.Name)
		}
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 || lines[0] != origin {
		return nil, nil, fmt.Errorf("checkpoint origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, nil, fmt.Errorf("bad checkpoint size %q", lines[1])
	}
	h, err := parseHash(lines[2])
	if err != nil {
		return nil, nil, err
	}
	return &checkpoint{origin, tlog.Tree{N: size, Hash: h}, n.Text}, n, nil
}

func parseHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	raw, err := b64.DecodeString(s)
	if err != nil || len(raw) != tlog.HashSize {
		return h, fmt.Errorf("bad hash %q", s)
	}
	copy(h[:], raw)
	return h, nil
}

// verifyCosignature checks a C2SP tlog-cosignature/v1 line, written independently of the
// Rust code from the spec: key ID over name||"\n"||0x04||pub, message
// "cosignature/v1\ntime T\n"||text, signature = keyid||u64 timestamp||ed25519 sig.
func verifyCosignature(n *note.Note, text, vkey string) (uint64, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return 0, errors.New("bad witness vkey")
	}
	name := parts[0]
	id, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return 0, errors.New("bad witness key id")
	}
	key, err := b64.DecodeString(parts[2])
	if err != nil || len(key) != 33 || key[0] != 0x04 {
		return 0, errors.New("bad witness key")
	}
	sum := sha256.Sum256(append([]byte(name+"\n"), key...))
	if uint64(binary.BigEndian.Uint32(sum[:4])) != id {
		return 0, errors.New("witness key id does not match")
	}
	pub := ed25519.PublicKey(key[1:])
	for _, s := range n.UnverifiedSigs {
		if s.Name != name || uint64(s.Hash) != id {
			continue
		}
		raw, err := b64.DecodeString(s.Base64)
		if err != nil || len(raw) != 4+8+64 {
			return 0, errors.New("bad cosignature encoding")
		}
		ts := binary.BigEndian.Uint64(raw[4:12])
		if ts >= 1<<63 {
			return 0, errors.New("cosignature timestamp out of range")
		}
		msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, text)
		if !ed25519.Verify(pub, []byte(msg), raw[12:]) {
			return 0, errors.New("cosignature does not verify")
		}
		return ts, nil
	}
	return 0, errors.New("no cosignature from the witness")
}

// parseProofFile parses a C2SP tlog-proof file.
func parseProofFile(b []byte) (index int64, proof tlog.RecordProof, signed []byte, err error) {
	s := string(b)
	const header = "c2sp.org/tlog-proof@v1\n"
	if !strings.HasPrefix(s, header) {
		return 0, nil, nil, errors.New("tlog-proof: bad header")
	}
	s = s[len(header):]
	line, s, _ := strings.Cut(s, "\n")
	if strings.HasPrefix(line, "extra ") {
		if _, err := b64.DecodeString(line[6:]); err != nil {
			return 0, nil, nil, errors.New("tlog-proof: bad extra")
		}
		line, s, _ = strings.Cut(s, "\n")
	}
	istr := strings.TrimPrefix(line, "index ")
	if !strings.HasPrefix(line, "index ") {
		return 0, nil, nil, errors.New("tlog-proof: missing index")
	}
	index, err = strconv.ParseInt(istr, 10, 64)
	if err != nil || strconv.FormatInt(index, 10) != istr {
		return 0, nil, nil, errors.New("tlog-proof: bad index")
	}
	for {
		var l string
		var found bool
		l, s, found = strings.Cut(s, "\n")
		if !found {
			return 0, nil, nil, errors.New("tlog-proof: no checkpoint")
		}
		if l == "" {
			break
		}
		h, err := parseHash(l)
		if err != nil {
			return 0, nil, nil, fmt.Errorf("tlog-proof: %w", err)
		}
		proof = append(proof, h)
	}
	return index, proof, []byte(s), nil
}

func parseHashLines(b []byte) ([]tlog.Hash, error) {
	var out []tlog.Hash
	s := string(b)
	if s == "" {
		return nil, nil
	}
	if !strings.HasSuffix(s, "\n") {
		return nil, errors.New("hash list must end in a newline")
	}
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		h, err := parseHash(l)
		if err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, nil
}

// dirTiles serves C2SP tiles (tile/<L>/<N>[.p/<W>]) from a directory to Go's tlog, whose
// Tile.Path() adds the height after "tile/".
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }

func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.Replace(t.Path(), "tile/8/", "tile/", 1)
		b, err := os.ReadFile(filepath.Join(d.dir, p))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func entryBundlePath(n int64, w int) string {
	t := tlog.Tile{H: 8, L: 0, N: n, W: w}
	return strings.Replace(t.Path(), "tile/8/0/", "tile/entries/", 1)
}

func verify(dir string) error {
	origin := string(read(dir, "origin"))
	v, err := note.NewVerifier(string(read(dir, "log.vkey")))
	if err != nil {
		return fmt.Errorf("log.vkey: %w", err)
	}
	if v.Name() != origin {
		return fmt.Errorf("log key name %q is not the origin %q", v.Name(), origin)
	}

	cp, n, err := openCheckpoint(read(dir, "checkpoint"), origin, v)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	ts, err := verifyCosignature(n, cp.text, string(read(dir, "witness.vkey")))
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}

	// The tlog-proof file for the entry, against its own embedded checkpoint.
	entry := read(dir, "entry")
	index, proof, signed, err := parseProofFile(read(dir, "entry.tlog-proof"))
	if err != nil {
		return err
	}
	pcp, _, err := openCheckpoint(signed, origin, v)
	if err != nil {
		return fmt.Errorf("tlog-proof checkpoint: %w", err)
	}
	if pcp.tree != cp.tree {
		return errors.New("tlog-proof checkpoint differs from checkpoint")
	}
	if err := tlog.CheckRecord(proof, cp.tree.N, cp.tree.Hash, index, tlog.RecordHash(entry)); err != nil {
		return fmt.Errorf("inclusion proof for entry %d: %w", index, err)
	}

	// Consistency with the older checkpoint.
	old, _, err := openCheckpoint(read(dir, "old-checkpoint"), origin, v)
	if err != nil {
		return fmt.Errorf("old-checkpoint: %w", err)
	}
	cons, err := parseHashLines(read(dir, "consistency"))
	if err != nil {
		return fmt.Errorf("consistency: %w", err)
	}
	if err := tlog.CheckTree(cons, cp.tree.N, cp.tree.Hash, old.tree.N, old.tree.Hash); err != nil {
		return fmt.Errorf("consistency %d -> %d: %w", old.tree.N, cp.tree.N, err)
	}

	// The tiles, through Go's TileHashReader, which authenticates them against the checkpoint.
	thr := tlog.TileHashReader(cp.tree, dirTiles{dir})
	th, err := tlog.TreeHash(cp.tree.N, thr)
	if err != nil || th != cp.tree.Hash {
		return fmt.Errorf("tiles: tree hash %v, %v", th, err)
	}
	p2, err := tlog.ProveRecord(cp.tree.N, index, thr)
	if err != nil || !equal(p2, proof) {
		return fmt.Errorf("tiles: ProveRecord differs from the tlog-proof file (%v)", err)
	}
	c2, err := tlog.ProveTree(cp.tree.N, old.tree.N, thr)
	if err != nil || !equal(c2, cons) {
		return fmt.Errorf("tiles: ProveTree differs from the consistency file (%v)", err)
	}
	// Every entry in the bundles against the level-0 hashes. This also covers a gap in
	// x/mod v0.7.0's TileHashReader: when several right-edge hashes share a tile (e.g. tree
	// size 1000), it starts the parent check at len(stx) and skips some child tiles, so a
	// tampered tile/0/000 is returned unauthenticated. Recomputing every leaf catches that.
	for b := int64(0); b*256 < cp.tree.N; b++ {
		w := int(cp.tree.N - b*256)
		if w > 256 {
			w = 256
		}
		data, err := os.ReadFile(filepath.Join(dir, entryBundlePath(b, w)))
		if err != nil {
			return err
		}
		for i := 0; i < w; i++ {
			if len(data) < 2 {
				return fmt.Errorf("entry bundle %d truncated", b)
			}
			l := int(binary.BigEndian.Uint16(data))
			if len(data) < 2+l {
				return fmt.Errorf("entry bundle %d truncated", b)
			}
			e := data[2 : 2+l]
			data = data[2+l:]
			x := b*256 + int64(i)
			hs, err := thr.ReadHashes([]int64{tlog.StoredHashIndex(0, x)})
			if err != nil {
				return fmt.Errorf("entry %d: %w", x, err)
			}
			if hs[0] != tlog.RecordHash(e) {
				return fmt.Errorf("entry %d in bundle %d does not match the tiles", x, b)
			}
			if x == index && !bytes.Equal(e, entry) {
				return fmt.Errorf("entry %d in the bundle differs from the entry file", x)
			}
		}
		if len(data) != 0 {
			return fmt.Errorf("entry bundle %d has trailing bytes", b)
		}
	}
	fmt.Printf("ok: %s size %d, cosigned at %d, entry %d included, consistent with size %d, tiles authentic\n",
		origin, cp.tree.N, ts, index, old.tree.N)
	return nil
}

func equal(a, b []tlog.Hash) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func flip(file, off string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		return errors.New("empty file")
	}
	var i int
	switch off {
	case "mid":
		i = len(b) / 2
	case "last":
		i = len(b) - 1
	default:
		i, err = strconv.Atoi(off)
		if err != nil || i < 0 || i >= len(b) {
			return errors.New("bad offset")
		}
	}
	b[i] ^= 1
	return os.WriteFile(file, b, 0o644)
}

// hashStore is an in-memory tlog.HashReader.
type hashStore []tlog.Hash

func (s hashStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = s[x]
	}
	return out, nil
}

// vectors prints reference values computed by Go's tlog for records "leaf 0", "leaf 1", ...
func vectors() error {
	const max = 1025
	selected := map[int64]bool{63: true, 64: true, 65: true, 100: true, 127: true, 128: true, 129: true,
		255: true, 256: true, 257: true, 511: true, 512: true, 513: true, 1000: true, 1023: true, 1024: true, 1025: true}
	var s hashStore
	fmt.Println("# tree hashes, inclusion and consistency proofs computed by golang.org/x/mod/sumdb/tlog")
	fmt.Println("# for records \"leaf <i>\"; lines: root N HASH | incl N I H1,H2,... | cons N M H1,...")
	for i := int64(0); i < max; i++ {
		hs, err := tlog.StoredHashes(i, []byte(fmt.Sprintf("leaf %d", i)), s)
		if err != nil {
			return err
		}
		s = append(s, hs...)
		n := i + 1
		if n > 40 && !selected[n] {
			continue
		}
		th, err := tlog.TreeHash(n, s)
		if err != nil {
			return err
		}
		fmt.Printf("root %d %s\n", n, th)
		for _, j := range []int64{0, n / 3, n / 2, n - 1} {
			p, err := tlog.ProveRecord(n, j, s)
			if err != nil {
				return err
			}
			fmt.Printf("incl %d %d %s\n", n, j, join(p))
		}
		for _, m := range []int64{1, n / 2, n - 1} {
			if m < 1 {
				continue
			}
			p, err := tlog.ProveTree(n, m, s)
			if err != nil {
				return err
			}
			fmt.Printf("cons %d %d %s\n", n, m, join(p))
		}
	}
	return nil
}

func join(p []tlog.Hash) string {
	if len(p) == 0 {
		return "-"
	}
	var parts []string
	for _, h := range p {
		parts = append(parts, h.String())
	}
	return strings.Join(parts, ",")
}
