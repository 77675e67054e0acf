package process

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/shipgate/shipgate/internal/rollout"
)

// stopPollInterval is how often Stop looks whether an instance is gone.
const stopPollInterval = 20 * time.Millisecond

// errGraceOver means an instance outlived its stop grace period.
var errGraceOver = errors.New("grace period over")

// instance is one process the runtime started or adopted.
type instance struct {
	inst    rollout.Instance
	spec    rollout.InstanceSpec // with defaults filled in
	logPath string
	// adopted is true for an instance started by an earlier server: it is
	// not our child, so its exit is seen by polling its PID, not by Wait.
	adopted bool
	// group is true when the PID leads its own process group, which is
	// then signalled as a whole.
	group bool
	// exited is closed once the process has exited.
	exited chan struct{}

	mu       sync.Mutex
	state    rollout.InstanceState
	reason   string
	failures int // failed health checks in a row
	stopping bool
	exitedAt time.Time
}

func newInstance(inst rollout.Instance, spec rollout.InstanceSpec, logPath string) *instance {
	return &instance{
		inst:    inst,
		spec:    spec,
		logPath: logPath,
		exited:  make(chan struct{}),
		state:   rollout.InstanceStarting,
	}
}

func (in *instance) status() rollout.InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	return rollout.InstanceStatus{State: in.state, Reason: in.reason}
}

// setRunning marks a starting instance as running once it passed its
// first health check.
func (in *instance) setRunning() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state == rollout.InstanceStarting {
		in.state = rollout.InstanceRunning
	}
}

func (in *instance) setStopping() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.stopping = true
}

// markExited records that the process is gone and why. Only the first
// call counts.
func (in *instance) markExited(reason string) rollout.InstanceStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.state != rollout.InstanceExited {
		if in.stopping {
			reason = "stopped: " + reason
		}
		in.state = rollout.InstanceExited
		in.reason = reason
		in.exitedAt = time.Now()
		close(in.exited)
	}
	return rollout.InstanceStatus{State: in.state, Reason: in.reason}
}

func (in *instance) isExited() bool {
	select {
	case <-in.exited:
		return true
	default:
		return false
	}
}

func (in *instance) exitTime() time.Time {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.exitedAt
}

// recordCheck counts the result of a health check of a running instance
// and reports whether it changed the state: FailureThreshold failures in a
// row make it unhealthy, and one success makes it running again.
func (in *instance) recordCheck(err error) (rollout.InstanceStatus, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	before := in.state
	switch {
	case in.state != rollout.InstanceRunning && in.state != rollout.InstanceUnhealthy:
		// Starting instances are judged by Start; exited ones are done.
	case err == nil:
		in.failures = 0
		in.state = rollout.InstanceRunning
		in.reason = ""
	default:
		in.failures++
		if in.failures >= in.spec.FailureThreshold {
			in.state = rollout.InstanceUnhealthy
			in.reason = fmt.Sprintf("%d health checks failed in a row; last: %v", in.failures, err)
		}
	}
	return rollout.InstanceStatus{State: in.state, Reason: in.reason}, in.state != before
}

// signal sends sig to the instance's process group, or to its process
// when it does not lead a group. A process that is already gone is fine.
func (in *instance) signal(sig syscall.Signal) error {
	pid := in.inst.PID
	if pid <= 1 {
		// kill(0) and kill(-1) would hit the server's group or every process.
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	if in.group {
		pid = -pid
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("send %v: %w", sig, err)
	}
	return nil
}

// exitedNow reports whether the process has exited, noticing it for an
// adopted instance, which no reaper watches.
func (in *instance) exitedNow() bool {
	if in.isExited() {
		return true
	}
	if !in.adopted || alive(in.inst.PID) {
		return false
	}
	in.markExited("exited (exit status unknown: not a child of this server)")
	return true
}

// gone reports whether the process has exited and, when it leads a
// group, whether everything it spawned in that group has exited too.
func (in *instance) gone() bool {
	return in.exitedNow() && (!in.group || !groupAlive(in.inst.PID))
}

// waitGone waits until the instance is gone, deadline fires (then it
// returns errGraceOver; a nil deadline never fires) or ctx is done. With
// leaderOnly it waits for the process alone, not its group: after SIGKILL
// the group may still hold zombies that only their new parent can reap,
// and nothing the runtime can do makes them go faster.
func (in *instance) waitGone(ctx context.Context, deadline <-chan time.Time, leaderOnly bool) error {
	tick := time.NewTicker(stopPollInterval)
	defer tick.Stop()
	for {
		if (leaderOnly && in.exitedNow()) || (!leaderOnly && in.gone()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return errGraceOver
		case <-tick.C:
		}
	}
}
