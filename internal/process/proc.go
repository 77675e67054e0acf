package process

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
)

// alive reports whether pid is a live process that we may signal. A zombie
// has exited, even though its PID still answers signal 0.
func alive(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true // no procfs here: trust the signal
	}
	state, _, ok := parseStat(stat)
	return !ok || !zombie(state)
}

// groupAlive reports whether process group pgid has a live member. Members
// that exited but wait to be reaped by their new parent do not count: how
// soon that parent, often init, reaps them is out of the runtime's hands.
func groupAlive(pgid int) bool {
	if pgid <= 0 || syscall.Kill(-pgid, 0) != nil {
		return false
	}
	// Some member is left; scan procfs to tell the live ones from zombies.
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // it exited while we looked
		}
		if state, pgrp, ok := parseStat(stat); ok && pgrp == pgid && !zombie(state) {
			return true
		}
	}
	return false
}

// parseStat returns the state and process group from the contents of
// /proc/<pid>/stat. They follow the command name, which is in parentheses
// and may itself hold spaces or parentheses.
func parseStat(stat []byte) (state byte, pgrp int, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After ")": state, ppid, pgrp, ...
	fields := bytes.Fields(stat[i+1:])
	if len(fields) < 3 || len(fields[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err := strconv.Atoi(string(fields[2]))
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], pgrp, true
}

func zombie(state byte) bool { return state == 'Z' || state == 'X' }

// isGroupLeader reports whether pid leads its own process group, as the
// instances this package starts do.
func isGroupLeader(pid int) bool {
	pgid, err := syscall.Getpgid(pid)
	return err == nil && pgid == pid
}
