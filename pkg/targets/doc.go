// Package targets holds gdm's dm targets (linear, striped, zero, error; the
// fault injectors delay, flakey and dust; crypt; log-writes; snapshot,
// snapshot-origin and snapshot-merge) and the backing devices they map onto.
//
// A Target is what the kernel's struct target_type describes, in Go: a
// required interface (Target: the I/O methods, each with a context, and
// status in dm's INFO and TABLE forms) and optional ones a target
// implements only when it has something to do at that point (Flusher,
// Messenger, Suspender, Resumer, Destroyer). pkg/table finds them with a
// type assertion and calls them where dm calls their kernel counterparts.
//
// A Target serves byte ranges relative to its own start; the table in
// pkg/table splits a request at target boundaries and hands each piece to the
// right target. Targets never open or close backing devices themselves: they
// borrow them from the table's DevSet, which opens each path once and closes
// everything exactly once when the table is destroyed.
//
// # Writing a target
//
// A new target is one file here that fills the interfaces in. Checklist:
//
//  1. A Check func: validate the args of one table line for a target of
//     the given length without touching any device, and return them in
//     canonical form (what `dmsetup table` prints). Errors are the Err*
//     of this package, wrapped with what was wrong.
//  2. A New func: build the target from canonical args, opening backing
//     devices through the DevSet (never os.Open: the set closes them once,
//     at destroy); a device the target maps a range of is opened with
//     openSized, which checks its size and notes the area (dm's
//     iterate_devices) for the table to check against the device's
//     logical block size. The args slice is reused for the next line once
//     New returns: keep the values (strings, numbers), never the slice.
//     Embed Base for the defaults.
//  3. The Target methods. Every I/O method takes the request's context
//     first: a target that waits (a remote device, a delay) gives up when
//     it ends. A write with FUA in its flags is durable when WriteAt
//     returns. Errors wrap an errno (syscall.EIO, ...) so that the NBD
//     layer can answer with the right code.
//  4. Status(StatusInfo): dm's STATUSTYPE_INFO text (often ""); TABLE form
//     "" (the table prints the line's canonical args) unless something
//     must be hidden there (a key).
//  5. Optional interfaces, only when the target needs them:
//     Flusher if it holds state the table's DevSet.Sync does not make
//     durable (a log's flush mark, a remote connection); FlushRequester
//     if it acts on clients' FLUSH requests themselves (fails or delays
//     them, as flakey and delay do); FlushCounter if a FLUSH request
//     that failed on one of its devices counts against it (striped);
//     Messenger for
//     `dmsetup message`; Suspender and Resumer for work at suspend and
//     resume; Destroyer to release what New took beyond DevSet devices
//     (goroutines, connections). The destructor runs exactly once, from
//     the table's destroy after its holders drained: never from I/O.
//     For discard and write-zeroes, as dm's constructor sets them:
//     Discarder if the target may take no discards (dm's
//     num_discard_bios 0), SelfDiscarder if it takes them whatever its
//     devices (discards_supported), ZeroPasser if it passes write-zeroes
//     to its devices (num_write_zeroes_bios); caps.go lists who does.
//  6. Register the Type in an init func; set NoLiveSwap if two live
//     tables over the target's store would corrupt it (`resume --live` is
//     then refused).
//  7. Tests: the Check errors, I/O against a model, the status forms, and
//     each optional interface's effect.
//
// Implementations must be safe for concurrent use: many I/Os run on one
// target at once. Hooks and the destructor are never called concurrently
// with each other (pkg/table serializes control operations), but I/O may
// still run during PreSuspend and the hooks of a live swap.
package targets
