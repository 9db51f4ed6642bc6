package msg

import (
	"errors"
	"strconv"
	"strings"
)

// EntityType is Ceph's CEPH_ENTITY_TYPE_* (the u8 "type" of entity_name_t and
// of the HELLO frame).
type EntityType uint8

// Entity types, values as in Ceph's msgr.h.
const (
	EntityMon    EntityType = 0x01
	EntityMDS    EntityType = 0x02
	EntityOSD    EntityType = 0x04
	EntityClient EntityType = 0x08
	EntityMgr    EntityType = 0x10
	EntityAuth   EntityType = 0x20
	EntityAny    EntityType = 0xFF
)

// String returns Ceph's name for the type ("mon", "client", ...), or
// "unknown" as ceph_entity_type_name does.
func (t EntityType) String() string {
	switch t {
	case EntityMon:
		return "mon"
	case EntityMDS:
		return "mds"
	case EntityOSD:
		return "osd"
	case EntityClient:
		return "client"
	case EntityMgr:
		return "mgr"
	case EntityAuth:
		return "auth"
	case EntityAny:
		return "any"
	}
	return "unknown"
}

// ParseEntityType parses a name as printed by EntityType.String.
func ParseEntityType(s string) (EntityType, error) {
	switch s {
	case "mon":
		return EntityMon, nil
	case "mds":
		return EntityMDS, nil
	case "osd":
		return EntityOSD, nil
	case "client":
		return EntityClient, nil
	case "mgr":
		return EntityMgr, nil
	case "auth":
		return EntityAuth, nil
	case "any":
		return EntityAny, nil
	}
	return 0, errors.New("msg: unknown entity type " + strconv.Quote(s))
}

// NumNew is the entity number of an entity that has no id yet (Ceph's
// entity_name_t::NEW, printed as "?").
const NumNew int64 = -1

// EntityName is Ceph's entity_name_t: a type and a number (mon rank, osd
// id, client global id).
type EntityName struct {
	Type EntityType
	Num  int64
}

// String prints the name as Ceph does: "client.4242", "osd.3", and
// "client.?" for NumNew.
func (n EntityName) String() string {
	if n.Num == NumNew {
		return n.Type.String() + ".?"
	}
	return n.Type.String() + "." + strconv.FormatInt(n.Num, 10)
}

// IsNew reports whether the name has no number yet.
func (n EntityName) IsNew() bool { return n.Num == NumNew }

// ParseEntityName parses "type.num" (e.g. "client.4242", "mon.0",
// "client.?").
func ParseEntityName(s string) (EntityName, error) {
	t, num, ok := strings.Cut(s, ".")
	if !ok {
		return EntityName{}, errors.New("msg: entity name " + strconv.Quote(s) + " lacks '.'")
	}
	et, err := ParseEntityType(t)
	if err != nil {
		return EntityName{}, err
	}
	if num == "?" {
		return EntityName{Type: et, Num: NumNew}, nil
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || num == "" || num[0] == '+' {
		return EntityName{}, errors.New("msg: bad entity number in " + strconv.Quote(s))
	}
	return EntityName{Type: et, Num: v}, nil
}
