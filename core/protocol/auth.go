package protocol

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"slices"

	"github.com/msgr-dev/msgr/core/msg"
	"github.com/msgr-dev/msgr/core/wire"
)

// Auth methods (CEPH_AUTH_*) and connection modes (CEPH_CON_MODE_*),
// FACTS.md §6.
const (
	AuthMethodUnknown uint32 = 0
	AuthMethodNone    uint32 = 1
	AuthMethodCephx   uint32 = 2
	AuthMethodGSS     uint32 = 4

	ConModeUnknown uint32 = 0
	ConModeCRC     uint32 = 1
	ConModeSecure  uint32 = 2
)

// Auth payload modes: the first byte of an AUTH_REQUEST payload.
const (
	authModeAuthorizer = 1  // to OSD/MDS/MGR: an authorizer (range 1..9)
	authModeMon        = 10 // to a monitor (range 10..19)
)

// errnoEOPNOTSUPP and errnoEACCES are the negative errno values Ceph puts
// in AUTH_BAD_METHOD.
const (
	errnoEOPNOTSUPP int32 = -95
	errnoEACCES     int32 = -13
)

// AuthName is Ceph's auth EntityName (what "client.admin" names): a type
// and a string id. It differs from msg.EntityName (type and number).
type AuthName struct {
	Type msg.EntityType
	ID   string
}

// String prints "type.id".
func (n AuthName) String() string { return n.Type.String() + "." + n.ID }

// AuthRequest is what an AuthClient puts in AUTH_REQUEST.
type AuthRequest struct {
	Method         uint32
	PreferredModes []uint32
	Payload        []byte
}

// AuthResult is what authentication established on a connection.
type AuthResult struct {
	// GlobalID is the client's global id (assigned by a monitor, or taken
	// from the authorizer).
	GlobalID uint64
	// ConMode is the connection mode (only ConModeCRC is implemented).
	ConMode uint32
	// SessionKey signs the pre-auth bytes in AUTH_SIGNATURE (HMAC-SHA256).
	// Empty for method none: the signature is then 32 zero bytes.
	SessionKey []byte
	// Name is the authenticated name (server side; may be zero).
	Name AuthName
}

// AuthClient is the client side of authentication on one connection. A
// Machine calls it from its goroutine only. A stateful method (cephx) needs
// one value per Machine; None is stateless and may be shared.
type AuthClient interface {
	// Request returns the AUTH_REQUEST to send to a peer of type peerType.
	// It is called again after a BadMethod that returned nil.
	Request(peerType msg.EntityType) (AuthRequest, error)
	// BadMethod handles AUTH_BAD_METHOD. Return nil to send a new Request,
	// an error to give up (the machine faults with ErrAuthRefused).
	BadMethod(method uint32, result int32, allowedMethods, allowedModes []uint32) error
	// ReplyMore handles AUTH_REPLY_MORE and returns the payload of the
	// AUTH_REQUEST_MORE to send.
	ReplyMore(payload []byte) ([]byte, error)
	// Done handles AUTH_DONE.
	Done(globalID uint64, conMode uint32, payload []byte) (AuthResult, error)
}

// AuthStatus is an AuthServer's verdict on one request.
type AuthStatus uint8

const (
	// AuthDone: authentication succeeded; send AUTH_DONE.
	AuthDone AuthStatus = iota + 1
	// AuthMore: send AUTH_REPLY_MORE and wait for AUTH_REQUEST_MORE.
	AuthMore
	// AuthBadMethod: refuse; send AUTH_BAD_METHOD with Result.
	AuthBadMethod
	// AuthBusy: the server cannot authenticate now; drop the connection
	// (Ceph's -EBUSY: the client retries later).
	AuthBusy
)

// AuthReply is an AuthServer's answer to AUTH_REQUEST / AUTH_REQUEST_MORE.
type AuthReply struct {
	Status AuthStatus
	// Result is the negative errno for AuthBadMethod.
	Result int32
	// Payload is the auth payload of AUTH_DONE or AUTH_REPLY_MORE.
	Payload []byte
	// Result of a successful authentication (AuthDone).
	AuthResult
}

// AuthServer is the server side of authentication. A Machine calls it from
// its goroutine only; one value may serve many machines if it is safe for
// concurrent use (None is).
type AuthServer interface {
	// Methods lists the methods and connection modes allowed for peers of
	// type peerType (sent in AUTH_BAD_METHOD).
	Methods(peerType msg.EntityType) (methods, modes []uint32)
	// PickConMode chooses the connection mode for method among the
	// client's preferred modes, or returns ConModeUnknown to refuse.
	PickConMode(peerType msg.EntityType, method uint32, preferred []uint32) uint32
	// Handle processes the payload of AUTH_REQUEST (more == false) or
	// AUTH_REQUEST_MORE (more == true).
	Handle(peerType msg.EntityType, method uint32, more bool, payload []byte) AuthReply
}

// authSignature is the AUTH_SIGNATURE payload: HMAC-SHA256 of data under
// key, or 32 zero bytes when the key is empty (auth none).
func authSignature(key, data []byte) [32]byte {
	var sig [32]byte
	if len(key) == 0 {
		return sig
	}
	h := hmac.New(sha256.New, key)
	h.Write(data)
	copy(sig[:], h.Sum(nil))
	return sig
}

// NoneClient is the client side of auth method "none": it names itself and
// asks for crc mode. The zero value authenticates as client.admin.
type NoneClient struct {
	// Name is the auth name sent to the server (default client.admin).
	Name AuthName
	// GlobalID is the global id to claim; 0 asks a monitor to assign one.
	GlobalID uint64
}

func (c NoneClient) name() AuthName {
	if c.Name.Type == 0 {
		return AuthName{Type: msg.EntityClient, ID: "admin"}
	}
	return c.Name
}

// Request builds AUTH_REQUEST(method none, modes [crc]). A non-monitor
// talking to a monitor (MonClient) sends mode MON (10), the name and the
// global id [LIVE]; everyone else, a monitor talking to another monitor
// included, sends the none authorizer: struct_v 1, the name and the global
// id. (A mon-named peer that sends mode 10 gets its session opened and every
// message dropped as "not authenticated" [LIVE].)
func (c NoneClient) Request(peerType msg.EntityType) (AuthRequest, error) {
	n := c.name()
	e := wire.NewEncoder(make([]byte, 0, 32+len(n.ID)))
	if peerType == msg.EntityMon && n.Type != msg.EntityMon {
		e.U8(authModeMon)
	} else {
		e.U8(authModeAuthorizer)
	}
	e.AuthEntityName(n.Type, n.ID)
	e.U64(c.GlobalID)
	return AuthRequest{
		Method:         AuthMethodNone,
		PreferredModes: []uint32{ConModeCRC},
		Payload:        e.Bytes(),
	}, nil
}

// BadMethod gives up: none is the only method this client has.
func (c NoneClient) BadMethod(method uint32, result int32, allowedMethods, allowedModes []uint32) error {
	return errors.New("auth none refused by the server")
}

// ReplyMore fails: method none has a single round.
func (c NoneClient) ReplyMore([]byte) ([]byte, error) {
	return nil, errors.New("auth none got AUTH_REPLY_MORE")
}

// Done accepts AUTH_DONE in crc mode with no session key.
func (c NoneClient) Done(globalID uint64, conMode uint32, payload []byte) (AuthResult, error) {
	if conMode != ConModeCRC {
		return AuthResult{}, errors.New("auth none: server chose an unsupported connection mode")
	}
	return AuthResult{GlobalID: globalID, ConMode: conMode, Name: c.name()}, nil
}

// NoneServer is the server side of auth method "none": it accepts any name
// in crc mode. NextGlobalID, if set, assigns a global id to clients that
// ask for one (as a monitor does); otherwise the claimed id is kept.
type NoneServer struct {
	NextGlobalID func() uint64
}

// Methods allows none in crc mode.
func (NoneServer) Methods(msg.EntityType) (methods, modes []uint32) {
	return []uint32{AuthMethodNone}, []uint32{ConModeCRC}
}

// PickConMode picks crc if the method is none and the client accepts crc.
func (NoneServer) PickConMode(_ msg.EntityType, method uint32, preferred []uint32) uint32 {
	if method == AuthMethodNone && slices.Contains(preferred, ConModeCRC) {
		return ConModeCRC
	}
	return ConModeUnknown
}

// Handle parses the none payload (mode MON or an authorizer: name and
// global id) and accepts it.
func (s NoneServer) Handle(_ msg.EntityType, method uint32, more bool, payload []byte) AuthReply {
	if method != AuthMethodNone || more {
		return AuthReply{Status: AuthBadMethod, Result: errnoEOPNOTSUPP}
	}
	name, gid, err := parseNonePayload(payload)
	if err != nil {
		return AuthReply{Status: AuthBadMethod, Result: errnoEACCES}
	}
	if gid == 0 && s.NextGlobalID != nil {
		gid = s.NextGlobalID()
	}
	return AuthReply{Status: AuthDone, AuthResult: AuthResult{GlobalID: gid, ConMode: ConModeCRC, Name: name}}
}

// maxAuthNameLen bounds the id of an auth name in a none payload.
const maxAuthNameLen = 4096

// parseNonePayload decodes the none AUTH_REQUEST payload: a mode byte (MON
// or an authorizer's struct_v 1), the auth name and the global id.
func parseNonePayload(p []byte) (AuthName, uint64, error) {
	d := wire.NewDecoder(p)
	mode := d.U8()
	typ, id := d.AuthEntityName(maxAuthNameLen)
	gid := d.U64()
	if err := d.Err(); err != nil {
		return AuthName{}, 0, err
	}
	if mode != authModeMon && mode != authModeAuthorizer {
		return AuthName{}, 0, errors.New("auth none: unknown payload mode")
	}
	return AuthName{Type: typ, ID: id}, gid, nil
}
