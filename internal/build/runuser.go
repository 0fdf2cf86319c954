package build

import (
	"fmt"
	"os"

	"github.com/intesys/ship-action/internal/rootfs"
)

// runUser resolves the USER of a RUN against the root file system in dir,
// read through an os.Root so that a symlinked /etc/passwd cannot name a
// host file.
func runUser(dir, spec string) (uid, gid int, groups []int, home string, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0, 0, nil, "", fmt.Errorf("opening root file system: %w", err)
	}
	defer root.Close()
	u, err := rootfs.ResolveRunUser(root.FS(), spec)
	if err != nil {
		return 0, 0, nil, "", err
	}
	return u.UID, u.GID, u.Groups, u.Home, nil
}
