package daemon

import "testing"

// A uuid is free again once its device is removed, and stays taken while
// a renamed device holds it.
func TestUUIDFreedByRemove(t *testing.T) {
	td := startTestDaemon(t, "")
	const u = "LVM-index-test"
	td.ok(t, "create", "a", "--table", "0 8 zero", "--uuid", u)
	td.ok(t, "rename", "a", "b")
	td.fails(t, "uuid already in use", "create", "c", "--table", "0 8 zero", "--uuid", u)
	td.ok(t, "remove", "b")
	td.ok(t, "create", "c", "--table", "0 8 zero", "--uuid", u)
}

// A restored device's uuid is taken as a created one's is.
func TestUUIDOfRestoredDeviceTaken(t *testing.T) {
	dir := t.TempDir()
	td := startTestDaemon(t, dir)
	td.ok(t, "create", "a", "--table", "0 8 zero", "--uuid", "LVM-restored")
	td.Shutdown()
	td2 := startTestDaemon(t, dir)
	td2.fails(t, "uuid already in use", "create", "b", "--table", "0 8 zero", "--uuid", "LVM-restored")
}
