//go:build !linux

package testcluster

import "os/exec"

// startProcess starts cmd. Outside Linux there is no parent-death signal, so
// nodes outlive a test binary that dies without running Close.
func startProcess(cmd *exec.Cmd) error { return cmd.Start() }
