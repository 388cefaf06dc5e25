package sdk_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/gopatrol/gopatrol/plugins/sdk"
)

// The mirrored strings must be semconv's, letter for letter.
func TestAttributesMatchSemconv(t *testing.T) {
	keys := []struct {
		got  string
		want attribute.Key
	}{
		{sdk.CloudProvider, semconv.CloudProviderKey},
		{sdk.CloudPlatform, semconv.CloudPlatformKey},
		{sdk.CloudRegion, semconv.CloudRegionKey},
		{sdk.CloudAvailabilityZone, semconv.CloudAvailabilityZoneKey},
		{sdk.CloudAccountID, semconv.CloudAccountIDKey},
		{sdk.CloudResourceID, semconv.CloudResourceIDKey},
		{sdk.HostID, semconv.HostIDKey},
		{sdk.HostType, semconv.HostTypeKey},
		{sdk.HostName, semconv.HostNameKey},
		{sdk.K8sClusterName, semconv.K8SClusterNameKey},
		{sdk.K8sNodeName, semconv.K8SNodeNameKey},
	}
	for _, k := range keys {
		if k.got != string(k.want) {
			t.Errorf("key %q, semconv v1.43.0 says %q", k.got, k.want)
		}
	}
	values := []struct {
		got  string
		want attribute.KeyValue
	}{
		{sdk.ProviderAWS, semconv.CloudProviderAWS},
		{sdk.ProviderAlibaba, semconv.CloudProviderAlibabaCloud},
		{sdk.ProviderGCP, semconv.CloudProviderGCP},
		{sdk.ProviderAzure, semconv.CloudProviderAzure},
		{sdk.ProviderIBMCloud, semconv.CloudProviderIBMCloud},
		{sdk.PlatformAWSEC2, semconv.CloudPlatformAWSEC2},
		{sdk.PlatformAlibabaECS, semconv.CloudPlatformAlibabaCloudECS},
		{sdk.PlatformGCPComputeEngine, semconv.CloudPlatformGCPComputeEngine},
		{sdk.PlatformGCPKubernetesEngine, semconv.CloudPlatformGCPKubernetesEngine},
		{sdk.PlatformAzureVM, semconv.CloudPlatformAzureVM},
		{sdk.PlatformAWSOpenShift, semconv.CloudPlatformAWSOpenShift},
		{sdk.PlatformAzureOpenShift, semconv.CloudPlatformAzureOpenShift},
		{sdk.PlatformGCPOpenShift, semconv.CloudPlatformGCPOpenShift},
		{sdk.PlatformIBMCloudOpenShift, semconv.CloudPlatformIBMCloudOpenShift},
		{sdk.PlatformAlibabaOpenShift, semconv.CloudPlatformAlibabaCloudOpenShift},
	}
	for _, v := range values {
		if v.got != v.want.Value.AsString() {
			t.Errorf("value %q, semconv v1.43.0 says %s=%q", v.got, v.want.Key, v.want.Value.AsString())
		}
	}
}
