//go:build linux

package testcluster

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// On Linux every redis-server is started with PR_SET_PDEATHSIG=SIGKILL, so
// the kernel kills it if the test binary dies without running Close (panic,
// go test -timeout, ^C). The death signal fires when the *thread* that forked
// the child exits, so all children are forked from one goroutine that is
// locked to its OS thread and never returns: that thread lives exactly as
// long as the test process.

type spawnRequest struct {
	cmd  *exec.Cmd
	errc chan error
}

var (
	spawnOnce sync.Once
	spawnCh   chan spawnRequest
)

func spawner() {
	runtime.LockOSThread() // never unlocked: the thread must outlive all children
	for req := range spawnCh {
		req.errc <- req.cmd.Start()
	}
}

// startProcess starts cmd with a parent-death signal of SIGKILL.
func startProcess(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnCh = make(chan spawnRequest)
		go spawner()
	})
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	req := spawnRequest{cmd: cmd, errc: make(chan error, 1)}
	spawnCh <- req
	return <-req.errc
}
