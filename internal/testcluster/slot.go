package testcluster

import "strings"

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

// crc16Table is the lookup table of CRC16-XMODEM (CCITT polynomial 0x1021,
// initial value 0, no reflection, no final XOR), the checksum Redis Cluster
// uses for key hashing.
var crc16Table = func() [256]uint16 {
	var t [256]uint16
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()

// CRC16 returns the CRC16-XMODEM checksum of s, treating s as raw bytes
// (no UTF-8 decoding). CRC16("123456789") is 0x31C3.
func CRC16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

// HashTag returns the part of key that Redis Cluster hashes: the bytes
// between the first '{' and the first '}' after it, if that range is
// non-empty; otherwise the whole key.
func HashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	n := strings.IndexByte(key[open+1:], '}')
	if n <= 0 { // no closing brace, or "{}" (empty tag)
		return key
	}
	return key[open+1 : open+1+n]
}

// Slot returns the Redis Cluster hash slot (0..16383) of key, exactly as
// CLUSTER KEYSLOT computes it.
func Slot(key string) int {
	return int(CRC16(HashTag(key)) & (NumSlots - 1))
}

// Slot returns the hash slot of key; it is the same as the package-level
// Slot and is provided for convenience.
func (c *Cluster) Slot(key string) int { return Slot(key) }
