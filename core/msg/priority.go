package msg

// Message priorities, Ceph's CEPH_MSG_PRIO_* (msgr.h). A higher value is
// sent (and dispatched) first.
const (
	PrioLow     uint16 = 64
	PrioDefault uint16 = 127
	PrioHigh    uint16 = 196
	PrioHighest uint16 = 255
)
