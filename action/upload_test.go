package action

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

type fakeUploader struct {
	mu   sync.Mutex
	tags []string
	fail bool
}

func (f *fakeUploader) UploadLayer(ctx context.Context, tag string, l v1.Layer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tags = append(f.tags, tag)
	if f.fail {
		return errors.New("upload refused")
	}
	return ctx.Err()
}

func TestEarlyUploads(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, fail := range []bool{false, true} {
		f := &fakeUploader{fail: fail}
		u := startUploads(context.Background(), f, "reg/app:1", log)
		for range 5 {
			l, err := random.Layer(64, "")
			if err != nil {
				t.Fatal(err)
			}
			u.add(l)
		}
		u.wait()
		if len(f.tags) != 5 || f.tags[0] != "reg/app:1" {
			t.Errorf("fail=%v: uploads %v, want 5 to reg/app:1", fail, f.tags)
		}
	}
	// stop: nothing starts after it.
	f := &fakeUploader{}
	u := startUploads(context.Background(), f, "reg/app:1", log)
	u.stop()
	l, _ := random.Layer(64, "")
	u.add(l)
	u.wg.Wait()
	if len(f.tags) != 0 {
		t.Errorf("an upload ran after stop: %v", f.tags)
	}
}
