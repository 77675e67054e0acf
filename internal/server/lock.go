package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock a server holds on its data dir.
const LockFile = "server.lock"

// ErrLocked means another server is using the data dir.
var ErrLocked = errors.New("data dir is locked by another shipgate server")

// dataLock is an exclusive lock on a data dir, held for the server's life,
// so that two servers never drive the same rollouts. The kernel releases
// it when the process dies, even by kill -9, so a crashed server never
// leaves a stale lock behind.
type dataLock struct {
	f *os.File
}

// lockDataDir takes the lock on dir or says who holds it.
func lockDataDir(dir string) (*dataLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		_ = f.Close() // nothing was written: another process holds the lock
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "unknown"
		}
		return nil, fmt.Errorf("%w: pid %s holds %s; stop that server, or give this one another --data dir", ErrLocked, holder, path)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataLock{f: f}, nil
}

// release gives the lock up.
func (l *dataLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return err
}
