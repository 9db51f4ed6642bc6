package wire

import (
	"encoding/binary"

	"github.com/msgr-dev/msgr/core/msg"
)

// msgr2 banner feature bits (a namespace separate from Ceph's
// CEPH_FEATURE_* bits; FACTS.md §3).
const (
	FeatureRevision1   uint64 = 1 << 0 // msgr2.1 framing (rev1)
	FeatureCompression uint64 = 1 << 1 // on-wire compression frames (17+)

	// FeaturesSupported is what this package implements and should be
	// advertised: rev1 only (compression frames are encode/decode only).
	FeaturesSupported = FeatureRevision1
	// FeaturesRequired is what we require of the peer: nothing.
	FeaturesRequired uint64 = 0
)

// Ceph feature bits for CLIENT_IDENT / SERVER_IDENT (see core/msg).
const (
	CephFeaturesAll       = msg.FeaturesAll
	CephFeatureMsgAddr2   = msg.FeatureMsgAddr2
	CephFeaturesRequired  = msg.FeaturesMsgr2Required
	CephFeaturesMonClient = msg.FeaturesMsgr2Required | msg.FeatureOSDReplyMux
)

// Banner layout.
const (
	BannerPrefix        = "ceph v2\n"
	BannerPrefixLen     = len(BannerPrefix)
	BannerHeaderLen     = BannerPrefixLen + 2 // prefix + u16 payload length
	BannerPayloadLen    = 16                  // two u64s
	BannerLen           = BannerHeaderLen + BannerPayloadLen
	MaxBannerPayloadLen = 4096 // a longer declared payload is ErrBadBanner
	msgr1Prefix         = "ceph v027"
)

// Banner is the first thing each side sends: the msgr2 features it
// supports and requires.
type Banner struct {
	Supported uint64
	Required  uint64
}

// DefaultBanner is the banner this implementation sends.
var DefaultBanner = Banner{Supported: FeaturesSupported, Required: FeaturesRequired}

// Encode appends the 26-byte banner to dst.
func (b Banner) Encode(dst []byte) []byte {
	dst = append(dst, BannerPrefix...)
	dst = binary.LittleEndian.AppendUint16(dst, BannerPayloadLen)
	dst = binary.LittleEndian.AppendUint64(dst, b.Supported)
	return binary.LittleEndian.AppendUint64(dst, b.Required)
}

// BannerSize returns how many bytes the peer's banner takes in total, once
// the first BannerHeaderLen bytes of buf are available (before that it
// returns BannerHeaderLen, nil). It checks the prefix (ErrMsgr1Banner for
// a msgr1 peer, ErrBadBanner otherwise) and the declared payload length
// (16..MaxBannerPayloadLen).
func BannerSize(buf []byte) (int, error) {
	if err := checkBannerPrefix(buf); err != nil {
		return 0, err
	}
	if len(buf) < BannerHeaderLen {
		return BannerHeaderLen, nil
	}
	n := int(binary.LittleEndian.Uint16(buf[BannerPrefixLen:]))
	if n < BannerPayloadLen || n > MaxBannerPayloadLen {
		return 0, errf(ErrBadBanner, "payload length %d", n)
	}
	return BannerHeaderLen + n, nil
}

func checkBannerPrefix(buf []byte) error {
	n := min(len(buf), BannerPrefixLen)
	if string(buf[:n]) == BannerPrefix[:n] {
		return nil
	}
	if m := min(len(buf), len(msgr1Prefix)); string(buf[:m]) == msgr1Prefix[:m] {
		return ErrMsgr1Banner
	}
	return errf(ErrBadBanner, "prefix %q", buf[:n])
}

// DecodeBanner decodes a complete banner from the start of buf and returns
// it and its size. Payload bytes beyond the two u64s are ignored (as
// Ceph). It returns ErrShort while buf is incomplete.
func DecodeBanner(buf []byte) (Banner, int, error) {
	n, err := BannerSize(buf)
	if err != nil {
		return Banner{}, 0, err
	}
	if len(buf) < n || n < BannerLen {
		return Banner{}, 0, errf(ErrShort, "banner needs %d bytes, have %d", max(n, BannerLen), len(buf))
	}
	p := buf[BannerHeaderLen:]
	return Banner{
		Supported: binary.LittleEndian.Uint64(p[0:]),
		Required:  binary.LittleEndian.Uint64(p[8:]),
	}, n, nil
}

// Check verifies that mine and peer are compatible (each side's required
// bits are supported by the other) and returns the frame layout to use
// when talking to peer: Rev1 iff the peer supports REVISION_1 (and we do).
func (mine Banner) Check(peer Banner) (Rev, error) {
	if mine.Required&peer.Supported != mine.Required {
		return 0, errf(ErrFeatures, "peer lacks required %#x", mine.Required&^peer.Supported)
	}
	if peer.Required&mine.Supported != peer.Required {
		return 0, errf(ErrFeatures, "we lack peer-required %#x", peer.Required&^mine.Supported)
	}
	if peer.Supported&FeatureRevision1 != 0 && mine.Supported&FeatureRevision1 != 0 {
		return Rev1, nil
	}
	return Rev0, nil
}
