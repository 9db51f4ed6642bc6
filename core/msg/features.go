package msg

// Ceph feature bits (CEPH_FEATURE_*, the u64 "features" of CLIENT_IDENT /
// SERVER_IDENT and Policy). Only the bits the messenger itself names are
// listed; see FACTS.md §8.
const (
	FeatureUID                uint64 = 1 << 0
	FeatureNoSrcAddr          uint64 = 1 << 1
	FeatureServerNautilus     uint64 = 1 << 2
	FeatureOSDReplyMux        uint64 = 1 << 12 // the MonClient's required bit (0x1000 seen live)
	FeatureCrushTunables      uint64 = 1 << 18
	FeatureServerLuminous     uint64 = 1 << 21
	FeatureCrushTunables2     uint64 = 1 << 25
	FeatureServerMimic        uint64 = 1 << 28
	FeatureCrushTunables3     uint64 = 1 << 41
	FeatureMsgrKeepalive2     uint64 = 1 << 42
	FeatureCrushV4            uint64 = 1 << 48
	FeatureServerJewel        uint64 = 1 << 57
	FeatureCrushTunables5     uint64 = 1 << 58
	FeatureMsgAddr2           uint64 = 1 << 59
	FeatureOSDRecoveryDeletes uint64 = 1 << 60
	FeatureCephxV2            uint64 = 1 << 61
)

const (
	// FeaturesAll is CEPH_FEATURES_ALL of Ceph 16.2.15, what the real CLI and
	// mon advertise as "supported" in CLIENT_IDENT/SERVER_IDENT [LIVE].
	FeaturesAll uint64 = 0x3f01cfbdfffdffff
	// FeaturesMsgr2Required is what a msgr2 peer always requires
	// (msgr2_required = MSG_ADDR2); the CLI sends it as "required".
	FeaturesMsgr2Required = FeatureMsgAddr2
	// FeaturesMonRequired is the "required" word a 16.2.15 mon sends in
	// SERVER_IDENT (advisory to clients) [LIVE].
	FeaturesMonRequired uint64 = 0x0c01020002040000
)
