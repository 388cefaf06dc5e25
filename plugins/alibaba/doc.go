// Package alibaba is the probe served as gopatrol-probe-alibaba (one name
// of the multi-call binary cmd/gopatrol-probes). It detects an Alibaba
// Cloud ECS instance through its metadata service in hardened (token)
// mode: PUT /latest/api/token, then the meta-data items with the token
// header.
//
// It collects the QPS of the load balancers GOPATROL_ALIBABA_SLB_IDS
// names, and its change against the last ten minutes, from CloudMonitor's
// DescribeMetricList through Alibaba Cloud's official SDK for Go
// (github.com/aliyun/alibaba-cloud-sdk-go v1.63.107, services/cms: the
// request, its RPC signature and the decoding of the answer). The
// new-generation alibabacloud-go/cms-20190101 is not used: the Go module
// proxy this project builds from does not serve it.
//
// What stays ours: the endpoint (GOPATROL_ALIBABA_CMS_ENDPOINT, passed
// into the SDK's request), the credentials handed to the SDK's signer
// (the usual variables, else the ECS RAM role fetched through the
// metadata client in token mode and refreshed before it expires: the
// SDK's own RAM-role provider asks 100.100.100.200 with no override),
// the bounded transport and the request's deadline under the SDK's HTTP
// client, retries with backoff (the SDK's own retry has none and skips
// throttling), errors stripped of the signed URL, the rate gate, and the
// decoding of the Datapoints JSON into points.
package alibaba
