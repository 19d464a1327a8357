using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;

namespace Orchestrator.Tests.Adversarial;

/// <summary>
/// Hostile byte streams at a rank's data-plane endpoint, from a raw socket that knows the job and its membership
/// epoch (the strongest stranger: one that read them off the wire): lengths are checked before anything is
/// allocated, frames nobody asked for are bounded, held hellos are bounded and expire, and each attack ends as a
/// <see cref="PeerFailedException"/> of that one peer (a membership change), never as memory or sockets lost.
/// </summary>
public class AdversarialDataPlaneTests
{
    const string Job = "job-adversarial";
    const long Epoch = 3;
    const int HalfGiB = 512 << 20;

    static byte[] Header(long step, int tag, int length, string job = Job, long epoch = Epoch, uint magic = 0x4F524348)
    {
        var h = new byte[36];
        BinaryPrimitives.WriteUInt32LittleEndian(h, magic);
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(4), new RankMembership(job, epoch, []).JobKey);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(12), epoch);
        BinaryPrimitives.WriteInt64LittleEndian(h.AsSpan(20), step);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(28), tag);
        BinaryPrimitives.WriteInt32LittleEndian(h.AsSpan(32), length);
        return h;
    }

    /// <summary>Rank 1 of a two-rank membership, and a raw socket that said hello as its rank 0.</summary>
    sealed class Victim : IAsyncDisposable
    {
        public required TcpRankTransport Transport { get; init; }
        public required RankListener Listener { get; init; }
        public required TcpClient Attacker { get; init; }
        public NetworkStream Stream => Attacker.GetStream();

        public static async Task<Victim> Start(TimeSpan receiveTimeout)
        {
            var listener = TcpRankTransport.BindListener(IPAddress.Loopback);
            var membership = new RankMembership(Job, Epoch, [new IPEndPoint(IPAddress.Loopback, 9), listener.LocalEndpoint]);
            var transport = TcpRankTransport.Start(membership, 1, listener);
            transport.ReceiveTimeout = receiveTimeout;
            var attacker = new TcpClient();
            await attacker.ConnectAsync(listener.LocalEndpoint);
            await attacker.GetStream().WriteAsync(Header(step: -1, tag: 0, length: 0));
            return new Victim { Transport = transport, Listener = listener, Attacker = attacker };
        }

        /// <summary>Waits until the victim closed the attacker's connection; how long that took.</summary>
        public async Task<TimeSpan> Closed(TimeSpan within)
        {
            var clock = Stopwatch.StartNew();
            using var timeout = new CancellationTokenSource(within);
            var buffer = new byte[64];
            try
            {
                while (await Stream.ReadAsync(buffer, timeout.Token) > 0) { }
            }
            catch (IOException) { }
            catch (OperationCanceledException) { throw new TimeoutException($"the victim kept the connection open for {within.TotalSeconds} s"); }
            return clock.Elapsed;
        }

        public async ValueTask DisposeAsync()
        {
            Attacker.Dispose();
            await Transport.DisposeAsync();
        }
    }

    /// <summary>The original attack: a 36-byte header made the receiver allocate 512 MiB.</summary>
    [Fact]
    public async Task AHugeFrameNobodyAskedFor_IsNeverAllocated_AndClosesItsConnection()
    {
        await using var victim = await Victim.Start(receiveTimeout: TimeSpan.FromSeconds(1));
        var before = GC.GetTotalAllocatedBytes(precise: true);

        await victim.Stream.WriteAsync(Header(step: 1, tag: 9, length: HalfGiB));
        await victim.Closed(within: TimeSpan.FromSeconds(10));

        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        Assert.True(allocated < 64 << 20, $"{allocated >> 20} MiB allocated for a header that announced 512 MiB");
        var e = await Assert.ThrowsAsync<PeerFailedException>(async () => await victim.Transport.Receive(0, step: 1, tag: 9, new byte[16]));
        Assert.Equal((0, PeerFailure.BadFrame), (e.Peer, e.Failure));
        Assert.Contains("no receive wanted", e.Message);
    }

    [Fact]
    public async Task AFrameLongerThanTheReceiveExpects_FailsThatReceive_WithoutReadingIt()
    {
        await using var victim = await Victim.Start(receiveTimeout: TimeSpan.FromSeconds(10));
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var receive = victim.Transport.Receive(0, step: 1, tag: 9, new byte[16]).AsTask();
        await Task.Delay(100);

        await victim.Stream.WriteAsync(Header(step: 1, tag: 9, length: HalfGiB));

        var e = await Assert.ThrowsAsync<PeerFailedException>(() => receive);
        Assert.Equal(PeerFailure.BadFrame, e.Failure);
        Assert.Contains($"sent {HalfGiB} bytes for step 1 tag 9, expected 16", e.Message);
        Assert.True(await victim.Closed(within: TimeSpan.FromSeconds(5)) < TimeSpan.FromSeconds(5));
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - before < 64 << 20);
    }

    [Theory]
    [InlineData(2 << 20)]
    [InlineData(-1)]
    public async Task AFrameOutsideTheConfiguredCap_ClosesTheConnectionAtItsHeader(int length)
    {
        await using var victim = await Victim.Start(receiveTimeout: TimeSpan.FromSeconds(30));
        victim.Transport.MaxFrameBytes = 1 << 20;

        await victim.Stream.WriteAsync(Header(step: 1, tag: 9, length: length));

        Assert.True(await victim.Closed(within: TimeSpan.FromSeconds(5)) < TimeSpan.FromSeconds(5)); // not after the 30 s receive timeout
        var e = await Assert.ThrowsAsync<PeerFailedException>(async () => await victim.Transport.Receive(0, step: 1, tag: 9, new byte[16]));
        Assert.Contains($"a frame of {length} bytes", e.Message);
    }

    /// <summary>Unsolicited frames queued forever; now a peer that runs more than a bounded number ahead is cut off.</summary>
    [Fact]
    public async Task SmallFramesNobodyAskedFor_AreHeldUpToTheCap_ThenTheConnectionCloses()
    {
        await using var victim = await Victim.Start(receiveTimeout: TimeSpan.FromSeconds(10));
        var frame = new byte[1024];
        try
        {
            for (int tag = 0; tag < TcpRankTransport.MaxHeldFrames + 10; tag++)
            {
                await victim.Stream.WriteAsync(Header(step: 7, tag: tag, length: frame.Length));
                await victim.Stream.WriteAsync(frame);
            }
        }
        catch (IOException) { } // the victim may close while frames are still being written

        await victim.Closed(within: TimeSpan.FromSeconds(5));
        // What arrived within the cap is still delivered, in order; the peer is failed after it.
        var first = new byte[1024];
        await victim.Transport.Receive(0, step: 7, tag: 0, first);
        var e = await Assert.ThrowsAsync<PeerFailedException>(async () => await victim.Transport.Receive(0, step: 7, tag: TcpRankTransport.MaxHeldFrames + 5, new byte[1024]));
        Assert.Contains($"more than {TcpRankTransport.MaxHeldFrames} frames", e.Message);
    }

    /// <summary>Hellos for membership epochs that never start were held forever (file descriptors 316 → 616).</summary>
    [Fact]
    public async Task HellosForEpochsThatNeverStart_AreCapped_AndExpire()
    {
        await using var listener = RankListener.Bind(IPAddress.Loopback, heldHelloLifetime: TimeSpan.FromSeconds(2));
        await using var transport = TcpRankTransport.Start(new RankMembership(Job, Epoch, [listener.LocalEndpoint, new IPEndPoint(IPAddress.Loopback, 9)]), 0, listener, keepListener: true);
        var strangers = new List<TcpClient>();
        try
        {
            for (int peer = 0; peer < RankListener.MaxHeldHellos + 20; peer++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(listener.LocalEndpoint);
                await c.GetStream().WriteAsync(Header(step: -1, tag: peer, length: 0, epoch: Epoch + 1));
                strangers.Add(c);
            }
            await Until(() => listener.Held + listener.Refused >= RankListener.MaxHeldHellos + 20, "every hello answered");
            Assert.Equal(RankListener.MaxHeldHellos, listener.Held);

            await Until(() => listener.Held == 0, "the held hellos expired");
            Assert.Equal(RankListener.MaxHeldHellos + 20, listener.Refused);
        }
        finally
        {
            foreach (var c in strangers) c.Dispose();
        }
    }

    public static TheoryData<string, byte[]> BadHellos => new()
    {
        { "another job", Header(step: -1, tag: 1, length: 0, job: "someone-else") },
        { "not ours (magic)", Header(step: -1, tag: 1, length: 0, magic: 0xDEADBEEF) },
        { "a negative rank", Header(step: -1, tag: -5, length: 0) },
        { "a hello with a length", Header(step: -1, tag: 1, length: HalfGiB) },
        { "a frame instead of a hello", Header(step: 4, tag: 1, length: 0) },
        { "half a hello", Header(step: -1, tag: 1, length: 0)[..20] },
    };

    [Theory, MemberData(nameof(BadHellos))]
    public async Task ABadHello_IsRefused_AndItsConnectionClosed(string what, byte[] hello)
    {
        await using var listener = RankListener.Bind(IPAddress.Loopback, helloTimeout: TimeSpan.FromSeconds(1));
        await using var transport = TcpRankTransport.Start(new RankMembership(Job, Epoch, [listener.LocalEndpoint, new IPEndPoint(IPAddress.Loopback, 9)]), 0, listener, keepListener: true);
        using var stranger = new TcpClient();
        await stranger.ConnectAsync(listener.LocalEndpoint);
        await stranger.GetStream().WriteAsync(hello);

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        var read = await stranger.GetStream().ReadAsync(new byte[8], timeout.Token); // 0: closed by the listener
        Assert.True(read == 0, what);
        Assert.Equal(0, listener.Held);
    }

    [Fact]
    public async Task ABroadcastLongerThanItsReceiversAccept_IsRefusedBeforeAllocation()
    {
        var payload = new byte[1000];
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            LoopbackRanks.Run(2, (c, r) => c.Broadcast(r == 0 ? payload : null, root: 0, step: -2, maxBytes: r == 0 ? 1000 : 100)));
        Assert.Contains("rank 1: rank 0 announced a broadcast of 1000 bytes for step -2; at most 100 are expected", e.Message);
    }

    [Theory]
    [InlineData(new byte[] { 1, 2 })] // shorter than its count
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF })] // a negative count
    [InlineData(new byte[] { 2, 0, 0, 0, 1, 2, 3 })] // two rows announced, none sent
    public void RowGradientsThatDoNotHoldWhatTheyAnnounce_FailTheirRank(byte[] share)
    {
        var valid = new byte[4];
        var e = Assert.Throws<PeerFailedException>(() => Orchestrator.Worker.Training.DlrmRank.Merge([valid, share], dim: 4));
        Assert.Equal((1, PeerFailure.BadFrame), (e.Peer, e.Failure));
    }

    static async Task Until(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"not {what} within 20 s");
            await Task.Delay(50);
        }
    }
}
