//go:build !amd64

package wire

import "math"

const useFold = false

const crcFoldMin = math.MaxInt

func crcFold(seed uint32, b []byte) uint32 { return crcUpdate(seed, b) }

const useSmall = false

func crcSmall(seed uint32, b []byte) uint32 { return crcUpdate(seed, b) }
