using System.Net;
using Orchestrator.Silo;

namespace Orchestrator.Tests;

public class SiloSettingsTests
{
    /// <summary>--advertise localhost bound every port on 0.0.0.0: only the literal 127.0.0.1 counted as local.</summary>
    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("localhost")]
    [InlineData("127.0.0.2")]
    [InlineData("::1")]
    public void ALoopbackAdvertisedAddress_ListensOnLoopbackOnly(string advertised)
    {
        var listen = new SiloSettings(Redis: "127.0.0.1:6379", AdvertisedAddress: advertised).ListenAddress;
        Assert.True(IPAddress.IsLoopback(listen), $"--advertise {advertised} listens on {listen}");
    }

    [Theory]
    [InlineData("10.1.2.3")]
    [InlineData("192.168.0.7")]
    public void AnyOtherAdvertisedAddress_ListensOnEveryAddress(string advertised) =>
        Assert.Equal(IPAddress.Any, new SiloSettings(Redis: "127.0.0.1:6379", AdvertisedAddress: advertised).ListenAddress);
}
