package testcluster

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// Migration is a hash slot being moved by hand from one master to another,
// the way redis-cli --cluster reshard does it. While it is in progress the
// source answers ASK for keys it no longer has, and the target accepts them
// after ASKING. Use it to control the pace of a migration under load:
//
//	m := c.BeginMigration(t, slot, target)
//	for m.MigrateKeys(t, 10) > 0 {
//		// run commands against the slot, observe ASK handling ...
//	}
//	m.Finish(t)
type Migration struct {
	// Slot is the slot being migrated.
	Slot int
	// From is the master that owned Slot when the migration began.
	From *Node
	// To is the master that will own Slot.
	To *Node

	c *Cluster
}

// BeginMigration puts slot into the importing state on to and into the
// migrating state on its current owner (asked live). to must be a master.
func (c *Cluster) BeginMigration(tb testing.TB, slot int, to *Node) *Migration {
	tb.Helper()
	m, err := c.beginMigration(slot, to)
	if err != nil {
		tb.Fatalf("testcluster: BeginMigration(slot %d to %s): %v", slot, to.Addr, err)
	}
	return m
}

func (c *Cluster) beginMigration(slot int, to *Node) (*Migration, error) {
	from, err := c.masterForSlot(slot)
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, fmt.Errorf("slot %d is already served by %s", slot, to.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := to.cl().Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from.ID).Err(); err != nil {
		return nil, fmt.Errorf("CLUSTER SETSLOT %d IMPORTING on %s: %w", slot, to.Addr, err)
	}
	if err := from.cl().Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to.ID).Err(); err != nil {
		return nil, fmt.Errorf("CLUSTER SETSLOT %d MIGRATING on %s: %w", slot, from.Addr, err)
	}
	return &Migration{Slot: slot, From: from, To: to, c: c}, nil
}

// MigrateKeys moves up to max keys (max <= 0 means Config.MigrateBatchSize)
// of the slot from the source to the target with one MIGRATE ... KEYS call
// and returns how many keys it moved; 0 means the source has no keys left
// in the slot.
func (m *Migration) MigrateKeys(tb testing.TB, max int) int {
	tb.Helper()
	n, err := m.migrateKeys(max)
	if err != nil {
		tb.Fatalf("testcluster: migrating slot %d from %s to %s: %v", m.Slot, m.From.Addr, m.To.Addr, err)
	}
	return n
}

func (m *Migration) migrateKeys(max int) (int, error) {
	if max <= 0 {
		max = m.c.cfg.MigrateBatchSize
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	keys, err := m.From.cl().ClusterGetKeysInSlot(ctx, m.Slot, max).Result()
	if err != nil {
		return 0, fmt.Errorf("CLUSTER GETKEYSINSLOT on %s: %w", m.From.Addr, err)
	}
	if len(keys) == 0 {
		return 0, nil
	}
	args := []any{"MIGRATE", "127.0.0.1", m.To.Port, "", 0, 5000, "REPLACE", "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	// The reply is OK, or NOKEY if all keys vanished (expired) meanwhile.
	if err := m.From.cl().Do(ctx, args...).Err(); err != nil {
		return 0, fmt.Errorf("MIGRATE of %d keys: %w", len(keys), err)
	}
	return len(keys), nil
}

// Finish moves all remaining keys (in batches of Config.MigrateBatchSize,
// sleeping Config.MigrateBatchDelay between batches), assigns the slot to
// the target with CLUSTER SETSLOT NODE on the target, the source and all
// other masters, and waits until the cluster is healthy and all nodes agree
// on the new owner.
func (m *Migration) Finish(tb testing.TB) {
	tb.Helper()
	err := m.finish(true)
	if err != nil {
		tb.Fatalf("testcluster: finishing migration of slot %d from %s to %s: %v", m.Slot, m.From.Addr, m.To.Addr, err)
	}
}

func (m *Migration) finish(wait bool) error {
	c := m.c
	for first := true; ; first = false {
		if !first && c.cfg.MigrateBatchDelay > 0 {
			time.Sleep(c.cfg.MigrateBatchDelay)
		}
		n, err := m.migrateKeys(0)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	setNode := func(n *Node) error {
		sctx, scancel := context.WithTimeout(ctx, opTimeout)
		defer scancel()
		if err := n.cl().Do(sctx, "CLUSTER", "SETSLOT", m.Slot, "NODE", m.To.ID).Err(); err != nil {
			return fmt.Errorf("CLUSTER SETSLOT %d NODE on %s: %w", m.Slot, n.Addr, err)
		}
		return nil
	}
	// Target first: it bumps its config epoch, so its claim wins everywhere.
	if err := setNode(m.To); err != nil {
		return err
	}
	if err := setNode(m.From); err != nil {
		return err
	}
	for _, n := range c.liveNodes() {
		if n == m.To || n == m.From {
			continue
		}
		if role, err := n.Role(); err == nil && role == "master" {
			if err := setNode(n); err != nil {
				return err
			}
		}
	}
	if !wait {
		return nil
	}
	return c.waitHealthy(ctx, false)
}

// MoveSlot migrates slot with all its keys from its current owner to the
// master to (see Migration for a step-by-step variant) and waits until all
// nodes agree on the new owner.
func (c *Cluster) MoveSlot(tb testing.TB, slot int, to *Node) {
	tb.Helper()
	c.MoveSlots(tb, []int{slot}, to)
}

// MoveSlots migrates every slot in slots (one after the other) with its keys
// to the master to and waits once, at the end, until all nodes agree. Slots
// already served by to are skipped.
func (c *Cluster) MoveSlots(tb testing.TB, slots []int, to *Node) {
	tb.Helper()
	for _, slot := range slots {
		owner, err := c.masterForSlot(slot)
		if err != nil {
			tb.Fatalf("testcluster: MoveSlots: %v", err)
		}
		if owner == to {
			continue
		}
		m, err := c.beginMigration(slot, to)
		if err == nil {
			err = m.finish(false)
		}
		if err != nil {
			tb.Fatalf("testcluster: moving slot %d to %s: %v", slot, to.Addr, err)
		}
	}
	c.WaitHealthy(tb, 0)
}

// MigrateKey moves one key of the slot from the source to the target with
// MIGRATE. The other keys of the slot stay: a command on keys of both
// sides then gets TRYAGAIN from the source until the migration is
// finished.
func (m *Migration) MigrateKey(tb testing.TB, key string) {
	tb.Helper()
	if s := Slot(key); s != m.Slot {
		tb.Fatalf("testcluster: MigrateKey(%q): the key is in slot %d, not %d", key, s, m.Slot)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*opTimeout)
	defer cancel()
	err := m.From.cl().Do(ctx, "MIGRATE", "127.0.0.1", m.To.Port, "", 0, 5000, "REPLACE", "KEYS", key).Err()
	if err != nil {
		tb.Fatalf("testcluster: MIGRATE %q from %s to %s: %v", key, m.From.Addr, m.To.Addr, err)
	}
}
