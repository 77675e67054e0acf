package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// ErrLocked means another server holds the store's server lock.
var ErrLocked = errors.New("another shipgate server uses this store")

// serverLock is the key of the session-level advisory lock a server holds
// on the store for as long as it runs.
const serverLock = 0x5348495053455256 // "SHIPSERV"

// LockServer takes the store's server lock, the PostgreSQL counterpart of
// the SQLite data dir's lock file: until leader election lets several
// servers share a store, a second server on the same database is refused
// instead of driving the same rollouts twice. The lock is a session
// advisory lock on a connection of its own, so it goes with the server's
// connection when the server dies; unlock gives it up.
//
// The lock lives as long as that one connection: if it breaks (the
// database restarted, the network dropped it), another server may take
// the lock. LockServer checks the connection every lockCheck and calls
// lost, once, when it is gone; the server must then stop acting.
func (s *Store) LockServer(ctx context.Context, holder string, lost func(error)) (unlock func() error, err error) {
	return s.lockServer(ctx, holder, lost, false)
}

// ShareServer takes the store's server lock in shared mode: the servers
// that share the store (one leads, docs/ha.md) hold it together, and keep
// out whoever needs it alone (a copy, shipgate store migrate), which
// LockServer takes. lost is as for LockServer.
func (s *Store) ShareServer(ctx context.Context, holder string, lost func(error)) (unlock func() error, err error) {
	return s.lockServer(ctx, holder, lost, true)
}

func (s *Store) lockServer(ctx context.Context, holder string, lost func(error), shared bool) (unlock func() error, err error) {
	lockFn, unlockFn := "pg_try_advisory_lock", "pg_advisory_unlock"
	if shared {
		lockFn, unlockFn = "pg_try_advisory_lock_shared", "pg_advisory_unlock_shared"
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock store: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT `+lockFn+`($1)`, int64(serverLock)).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock store: %w", err)
	}
	if !ok {
		conn.Release()
		who := s.lockHolder(ctx)
		if shared {
			return nil, fmt.Errorf("%w (%s): a copy of the store (shipgate store migrate) runs; start the server once it is done", ErrLocked, who)
		}
		return nil, fmt.Errorf("%w (%s); stop every server on it first", ErrLocked, who)
	}
	if _, err := conn.Exec(ctx, `SELECT set_config('application_name', $1, false)`, holder); err != nil {
		conn.Release()
		return nil, fmt.Errorf("lock store: %w", err)
	}
	watch, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(lockCheck)
		defer t.Stop()
		for {
			select {
			case <-watch.Done():
				return
			case <-t.C:
			}
			pctx, cancel := context.WithTimeout(watch, lockCheck)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && watch.Err() == nil {
				if lost != nil {
					lost(fmt.Errorf("the store's server lock is lost with its connection: %w", err))
				}
				return
			}
		}
	}()
	var once sync.Once
	unlock = func() error {
		var err error
		once.Do(func() {
			stop()
			<-done
			// On a broken connection this fails, and Release then
			// destroys the connection: either way the lock is gone.
			_, err = conn.Exec(context.WithoutCancel(ctx), `SELECT `+unlockFn+`($1)`, int64(serverLock))
			conn.Release()
		})
		return err
	}
	s.unlockServer.Store(&unlock)
	return unlock, nil
}

// lockCheck is how often LockServer checks its connection.
const lockCheck = 2 * time.Second

// lockHolder describes the session holding the server lock, from
// pg_stat_activity, as well as it can.
func (s *Store) lockHolder(ctx context.Context) string {
	var name, addr string
	err := s.pool.QueryRow(ctx, `
SELECT a.application_name, COALESCE(host(a.client_addr), 'local')
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
LIMIT 1`, int64(serverLock)).Scan(&name, &addr)
	if err != nil || name == "" {
		return "held by a session of the database"
	}
	return "held by " + name + " from " + addr
}

// ServerHolder names this process for LockServer: host, pid and data dir.
func ServerHolder(dataDir string) string {
	host, _ := os.Hostname()
	return "shipgate " + host + " pid " + strconv.Itoa(os.Getpid()) + " " + dataDir
}
