package cloudapi

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
)

// SignRPC returns Alibaba Cloud's RPC signature (v1, HMAC-SHA1) of the
// request parameters q (all of them: Action, AccessKeyId, Timestamp,
// SignatureNonce..., without Signature) for method.
func SignRPC(method string, q url.Values, secret string) string {
	toSign := method + "&" + Escape("/") + "&" + Escape(canonicalQuery(q))
	m := hmac.New(sha1.New, []byte(secret+"&"))
	m.Write([]byte(toSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
