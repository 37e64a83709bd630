// Package table holds gdm's dm tables and the devices that serve them.
//
// A Table is an immutable list of targets with a btree index over their
// sectors. A Device has a live slot and an inactive slot, each holding at
// most one table.
//
// # Reference counting
//
// The rules come from the kernel patch "dm table: rework reference
// counting" (shared/seed); their mechanism is all in holders.go:
//
//   - A table has exactly one uncounted reference: the slot holding it.
//   - Temporary users take a counted reference and give it back with Put:
//     each I/O through Device.Get (which waits while the device is
//     suspended), status, metrics and the table text through Device.View
//     (which does not wait, and Puts when its func returns). They count in
//     the table's holders.
//   - A table is destroyed only by Device.destroyTable, never by a Put or
//     on an I/O path. destroy waits for the holders to drain (the last Put
//     wakes it; Put costs nothing more while no one waits), flushes a table
//     that was live, runs its suspend hooks if it was running, calls each
//     target's destructor exactly once, and closes the backing devices
//     exactly once.
//   - Get is race-free against a swap: it counts itself a holder before it
//     checks that the table is still live, and a swap stores the new table
//     before it drains the old one.
//
// The fixed points at which a table is destroyed, and no others:
//
//   - Device.Load over an inactive table (the old inactive one);
//   - Device.Resume with an inactive table (the old live one, once it is
//     out of the slot);
//   - Device.Clear (the inactive one);
//   - Device.Close, device removal and daemon shutdown (both);
//   - Device.Discard (a table from Build that never reached a slot).
//
// # Target hooks
//
// pkg/table calls the targets' optional hooks (targets.Suspender,
// targets.Resumer, targets.Destroyer) where dm calls them, with the
// device's control lock held so that a table's hooks never overlap:
//
//   - Device.Suspend: PreSuspend, then the wait for in-flight I/O (on
//     failure PreSuspendUndo), the flush, then PostSuspend.
//   - Device.Resume with a new table: the new table's PreResume first (a
//     refusal refuses the resume with nothing changed); the old table's
//     suspend hooks as for Suspend, unless the device is suspended already;
//     then the new table's Resume, just before its I/O is let in. A live
//     swap (resume --live) presuspends the old table before the swap and
//     postsuspends it in destroy, after its I/O drained; a table holding a
//     NoLiveSwap target refuses the live swap (ErrLiveSwapRefused) when
//     the old table is still serving I/O.
//   - Device.Resume of a suspended device without a new table: PreResume,
//     then Resume, on the live table.
//   - destroy: PostSuspend (and PreSuspend before it) if the table was
//     running, then each Destroyer's Destroy, once.
//
// Where gdm differs from dm: dm runs the new table's preresume after the
// old table is suspended, and a refusal leaves the device suspended with
// the new table; gdm asks first, so that a refusal changes nothing. After a
// `suspend` (the order dmsetup uses) the old table is suspended by then in
// both.
package table
