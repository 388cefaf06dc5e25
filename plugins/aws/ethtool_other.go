//go:build !linux

package aws

import "errors"

func ethtoolStats(string) (string, map[string]uint64, error) {
	return "", nil, errors.New("ethtool statistics are read on Linux only")
}
