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

// planeLockPattern names the files by which each server says it uses a
// plane dir: one per server (servers on one machine share a --plane-dir),
// each locked for the server's life.
const planeLockPattern = "server-*.plane"

// planeLock is a server's lock file in the plane dir it uses: while it is
// locked, `shipgate down` on that dir knows a live server would start its
// routers again.
type planeLock struct {
	f *os.File
}

// lockPlaneDir writes and locks this server's file in dir, saying who it
// is: its pid, data dir and API address.
func lockPlaneDir(dir, dataDir, api string) (*planeLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create plane dir: %w", err)
	}
	f, err := os.CreateTemp(dir, planeLockPattern)
	if err != nil {
		return nil, fmt.Errorf("plane dir lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	if _, err := fmt.Fprintf(f, "pid %d, data dir %s, API %s\n", os.Getpid(), dataDir, api); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return &planeLock{f: f}, nil
}

// release removes the file, then gives the lock up.
func (l *planeLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.f.Name())
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err = errors.Join(err, l.f.Close())
	l.f = nil
	return err
}

// livePlaneUsers returns who the live servers using the plane dir are (the
// content of each locked file). Files left by a server that died, no longer
// locked, are removed.
func livePlaneUsers(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, planeLockPattern))
	if err != nil {
		return nil, err
	}
	var live []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			continue // removed by its server as it stopped
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
			b, _ := os.ReadFile(name)
			who := strings.TrimSpace(string(b))
			if who == "" {
				who = "a server starting (" + name + ")"
			}
			live = append(live, who)
		} else {
			_ = os.Remove(name) // left by a dead server
		}
		_ = f.Close()
	}
	return live, nil
}
