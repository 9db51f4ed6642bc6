package msg

// Policy is Ceph's Messenger::Policy: how a connection to a given peer type
// behaves on faults and which features it needs. Ceph's named constructors
// are provided below; see FACTS.md §8.6 for the behaviour each flag selects.
type Policy struct {
	// Lossy: on a fault the connection is closed and its queue dropped.
	Lossy bool
	// Server: this side never initiates a reconnect (it waits in STANDBY).
	Server bool
	// Standby: a lossless connection with nothing queued goes to STANDBY
	// instead of reconnecting.
	Standby bool
	// ResetCheck: a peer reconnecting with a different session (cookie)
	// gets its old session reset.
	ResetCheck bool
	// RegisterLossyClients: a lossy server still tracks its clients'
	// connections (needed to detect stale ones).
	RegisterLossyClients bool

	// FeaturesSupported is what this side advertises for the connection.
	FeaturesSupported uint64
	// FeaturesRequired must all be present in the peer's supported set.
	FeaturesRequired uint64

	// ThrottleBytes / ThrottleMessages cap the bytes / number of messages
	// read from peers of this policy and not yet released by the
	// application (Ceph's throttler_bytes / throttler_messages). 0 means
	// unlimited.
	ThrottleBytes    uint64
	ThrottleMessages uint64
}

func newPolicy(lossy, server, standby, resetcheck, registerLossy bool, req uint64) Policy {
	return Policy{
		Lossy:                lossy,
		Server:               server,
		Standby:              standby,
		ResetCheck:           resetcheck,
		RegisterLossyClients: registerLossy,
		FeaturesSupported:    FeaturesAll,
		FeaturesRequired:     req,
	}
}

// StatefulServer is Ceph's Policy::stateful_server (lossless server, e.g.
// OSD to OSD cluster side).
func StatefulServer(req uint64) Policy { return newPolicy(false, true, true, true, true, req) }

// StatelessRegisteredServer is Ceph's Policy::stateless_registered_server.
func StatelessRegisteredServer(req uint64) Policy {
	return newPolicy(true, true, false, false, true, req)
}

// StatelessServer is Ceph's Policy::stateless_server (what the mon uses for
// clients).
func StatelessServer(req uint64) Policy { return newPolicy(true, true, false, false, false, req) }

// LosslessPeer is Ceph's Policy::lossless_peer.
func LosslessPeer(req uint64) Policy { return newPolicy(false, false, true, false, true, req) }

// LosslessPeerReuse is Ceph's Policy::lossless_peer_reuse (mon to mon).
func LosslessPeerReuse(req uint64) Policy { return newPolicy(false, false, true, true, true, req) }

// LossyClient is Ceph's Policy::lossy_client.
func LossyClient(req uint64) Policy { return newPolicy(true, false, false, false, true, req) }

// LosslessClient is Ceph's Policy::lossless_client.
func LosslessClient(req uint64) Policy { return newPolicy(false, false, false, true, true, req) }
