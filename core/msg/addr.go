package msg

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// AddrType is entity_addr_t's type field.
type AddrType uint32

// Address types, values as in Ceph's msg_types.h.
const (
	AddrNone   AddrType = 0 // no address; printed "-"
	AddrLegacy AddrType = 1 // msgr1, printed "v1:"
	AddrMsgr2  AddrType = 2 // msgr2, printed "v2:"
	AddrAny    AddrType = 3 // either protocol; printed with no prefix (clients that never bind)
	AddrCIDR   AddrType = 4 // a network, used by blocklists; printed "cidr:"
)

// String returns Ceph's get_type_name: "none", "v1", "v2", "any", "cidr",
// or "???" for unknown values.
func (t AddrType) String() string {
	switch t {
	case AddrNone:
		return "none"
	case AddrLegacy:
		return "v1"
	case AddrMsgr2:
		return "v2"
	case AddrAny:
		return "any"
	case AddrCIDR:
		return "cidr"
	}
	return "???"
}

// Addr is Ceph's entity_addr_t: a type, a nonce (random per process for
// clients, 0 for monitors) and an IP socket address.
//
// A zero AddrPort (invalid Addr) is Ceph's "blank" address (sa_family 0).
// IPv6 flowinfo and scope id are not kept: they are written as 0 and ignored
// when decoded; an IPv6 zone is dropped on the wire. Addr is comparable with
// ==, which is how Ceph compares addresses (type, nonce and sockaddr).
type Addr struct {
	Type     AddrType
	Nonce    uint32
	AddrPort netip.AddrPort
}

// IsBlank reports whether the address carries no IP (Ceph's is_blank_ip).
func (a Addr) IsBlank() bool { return !a.AddrPort.Addr().IsValid() }

// IsIPv4 / IsIPv6 report the family the address is encoded with.
func (a Addr) IsIPv4() bool { return a.AddrPort.Addr().Is4() }

// IsIPv6 reports whether the address is encoded as AF_INET6 (including
// IPv4-mapped IPv6 addresses).
func (a Addr) IsIPv6() bool { return a.AddrPort.Addr().Is6() }

// Port returns the port (0 for a blank address).
func (a Addr) Port() uint16 { return a.AddrPort.Port() }

// String prints the address as Ceph does: "v2:127.0.0.1:3300/0",
// "v1:[::1]:6789/12", "127.0.0.1:0/42" for type any, "-" for type none.
// A blank address prints "(unrecognized address family 0)" as in Ceph.
func (a Addr) String() string {
	if a.Type == AddrNone {
		return "-"
	}
	var b strings.Builder
	b.Grow(32)
	if a.Type != AddrAny {
		b.WriteString(a.Type.String())
		b.WriteByte(':')
	}
	ip := a.AddrPort.Addr()
	switch {
	case !ip.IsValid():
		b.WriteString("(unrecognized address family 0)")
	case ip.Is4():
		b.WriteString(ip.String())
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(a.AddrPort.Port())))
	default:
		b.WriteByte('[')
		b.WriteString(ip.WithZone("").String())
		b.WriteString("]:")
		b.WriteString(strconv.Itoa(int(a.AddrPort.Port())))
	}
	b.WriteByte('/')
	b.WriteString(strconv.FormatUint(uint64(a.Nonce), 10))
	return b.String()
}

// ErrBadAddr is returned (wrapped) by ParseAddr and ParseAddrVec.
var ErrBadAddr = errors.New("msg: bad address")

func badAddr(s, why string) error {
	return errors.Join(ErrBadAddr, errors.New("msg: address "+strconv.Quote(s)+": "+why))
}

// ParseAddr parses an address in Ceph's syntax (entity_addr_t::parse):
// an optional type prefix "v1:", "v2:" or "any:" (none means v2), an IPv4
// address or a bracketed IPv6 address (an unbracketed IPv6 address is taken
// whole, with no port), an optional ":port" and an optional "/nonce".
// "-" is the none address. Examples: "v2:127.0.0.1:3300/0", "1.2.3.4:6789",
// "v2:[::1]:3300/0".
func ParseAddr(s string) (Addr, error) {
	a, rest, err := parseAddrPrefix(s)
	if err != nil {
		return Addr{}, err
	}
	if rest != "" {
		return Addr{}, badAddr(s, "trailing "+strconv.Quote(rest))
	}
	return a, nil
}

// parseAddrPrefix parses one address at the start of s and returns the
// unparsed rest (for address vectors).
func parseAddrPrefix(s string) (Addr, string, error) {
	orig := s
	if strings.HasPrefix(s, "-") {
		return Addr{}, s[1:], nil
	}
	a := Addr{Type: AddrMsgr2}
	switch {
	case strings.HasPrefix(s, "v1:"):
		a.Type, s = AddrLegacy, s[3:]
	case strings.HasPrefix(s, "v2:"):
		a.Type, s = AddrMsgr2, s[3:]
	case strings.HasPrefix(s, "any:"):
		a.Type, s = AddrAny, s[4:]
	}
	var ipStr string
	bracketed := false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Addr{}, "", badAddr(orig, "missing ']'")
		}
		ipStr, s = s[1:end], s[end+1:]
		bracketed = true
	} else {
		// The IP runs up to the first character that cannot be part of it.
		end := strings.IndexAny(s, "/,]")
		if end < 0 {
			end = len(s)
		}
		host := s[:end]
		if strings.Count(host, ":") <= 1 {
			// IPv4, optionally with ":port".
			if i := strings.IndexByte(host, ':'); i >= 0 {
				end = i
			}
		}
		ipStr, s = s[:end], s[end:]
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return Addr{}, "", badAddr(orig, "bad IP "+strconv.Quote(ipStr))
	}
	if !bracketed && ip.Is6() && strings.HasPrefix(s, ":") {
		return Addr{}, "", badAddr(orig, "IPv6 with a port needs brackets")
	}
	var port uint64
	if strings.HasPrefix(s, ":") {
		s = s[1:]
		n := digits(s)
		if n == 0 {
			return Addr{}, "", badAddr(orig, "missing port")
		}
		port, err = strconv.ParseUint(s[:n], 10, 16)
		if err != nil {
			return Addr{}, "", badAddr(orig, "bad port")
		}
		s = s[n:]
	}
	if strings.HasPrefix(s, "/") {
		s = s[1:]
		n := digits(s)
		if n == 0 {
			return Addr{}, "", badAddr(orig, "missing nonce")
		}
		nonce, err := strconv.ParseUint(s[:n], 10, 32)
		if err != nil {
			return Addr{}, "", badAddr(orig, "bad nonce")
		}
		a.Nonce = uint32(nonce)
		s = s[n:]
	}
	a.AddrPort = netip.AddrPortFrom(ip, uint16(port))
	return a, s, nil
}

func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// MustParseAddr is ParseAddr that panics on error; for constants and tests.
func MustParseAddr(s string) Addr {
	a, err := ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// AddrVec is Ceph's entity_addrvec_t: the addresses of one entity, usually
// [v2, v1].
type AddrVec []Addr

// String prints as Ceph does: "" for an empty vector, the single address
// for one, "[a,b]" for more.
func (v AddrVec) String() string {
	switch len(v) {
	case 0:
		return ""
	case 1:
		return v[0].String()
	}
	var b strings.Builder
	b.WriteByte('[')
	for i, a := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(a.String())
	}
	b.WriteByte(']')
	return b.String()
}

// ParseAddrVec parses "[addr,addr,...]" or a single address. An empty
// vector ("" or "[]") is an error, as in Ceph.
func ParseAddrVec(s string) (AddrVec, error) {
	if !strings.HasPrefix(s, "[") {
		a, err := ParseAddr(s)
		if err != nil {
			return nil, err
		}
		return AddrVec{a}, nil
	}
	rest := s[1:]
	var v AddrVec
	for {
		a, r, err := parseAddrPrefix(rest)
		if err != nil {
			return nil, err
		}
		v = append(v, a)
		if strings.HasPrefix(r, ",") {
			rest = r[1:]
			continue
		}
		if r != "]" {
			return nil, badAddr(s, "expected ',' or a final ']'")
		}
		return v, nil
	}
}

// Contains reports whether a is one of the addresses (exact match, as
// Ceph's entity_addrvec_t::contains).
func (v AddrVec) Contains(a Addr) bool {
	for _, x := range v {
		if x == a {
			return true
		}
	}
	return false
}

// Msgr2 returns the first v2 (or any) address, as Ceph's
// entity_addrvec_t::as_legacy_addr counterpart for msgr2.
func (v AddrVec) Msgr2() (Addr, bool) {
	for _, x := range v {
		if x.Type == AddrMsgr2 || x.Type == AddrAny {
			return x, true
		}
	}
	return Addr{}, false
}

// Legacy returns the first v1 (or any) address.
func (v AddrVec) Legacy() (Addr, bool) {
	for _, x := range v {
		if x.Type == AddrLegacy || x.Type == AddrAny {
			return x, true
		}
	}
	return Addr{}, false
}
