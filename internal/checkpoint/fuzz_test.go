package checkpoint

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/kubetrain/kubetrain/internal/contract"
)

// FuzzRead feeds arbitrary manifests to Read, next to one real object: it returns objects that
// match what the manifest lists, or an error (a *CorruptError for a bad manifest), and never
// panics.
func FuzzRead(f *testing.F) {
	obj := []byte("weights")
	sum := sha256.Sum256(obj)
	digest := hex.EncodeToString(sum[:])
	valid := fmt.Sprintf(`{"version":1,"job":{"namespace":"ns","name":"job","uid":"u"},"epoch":1,"objects":[{"name":"weights.bin","size":7,"sha256":%q}]}`, digest)
	f.Add([]byte(valid))
	f.Add([]byte(`{"version":1,"objects":[{"name":"../../etc/passwd","size":1,"sha256":"00"}]}`))
	f.Add([]byte(`{"version":1,"objects":[{"name":"weights.bin","size":-1,"sha256":""}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`{"version":1,"extra":true}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		ctx := context.Background()
		b := open(t, "mem://")
		dir := prefix + "ckpt-000001-n/"
		if err := b.WriteAll(ctx, dir+"weights.bin", obj, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteAll(ctx, dir+"manifest.json", manifest, nil); err != nil {
			t.Fatal(err)
		}
		m, objects, err := Read(ctx, b, dir+"manifest.json", DefaultMaxBytes)
		if err != nil {
			var corrupt *CorruptError
			if !errors.As(err, &corrupt) {
				t.Logf("not a CorruptError: %v", err)
			}
			return
		}
		if len(objects) != len(m.Objects) {
			t.Fatalf("%d objects for a manifest of %d", len(objects), len(m.Objects))
		}
		for i, o := range objects {
			if contract.CheckKeyComponent(o.Name) != nil {
				t.Fatalf("object %q read from outside its checkpoint's directory", o.Name)
			}
			s := sha256.Sum256(o.Data)
			if int64(len(o.Data)) != m.Objects[i].Size || hex.EncodeToString(s[:]) != m.Objects[i].SHA256 {
				t.Fatalf("object %s does not match its manifest entry %+v", o.Name, m.Objects[i])
			}
		}
	})
}
