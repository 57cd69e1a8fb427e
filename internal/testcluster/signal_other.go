//go:build !unix

package testcluster

import "syscall"

// Redis does not run on these platforms; the values only keep the package
// compiling. Available reports an error there, so no node is ever started.
var (
	sigStop = syscall.Signal(0x13)
	sigCont = syscall.Signal(0x12)
	sigTerm = syscall.SIGTERM
	sigKill = syscall.SIGKILL
)
