using System.Security.Cryptography;
using Orchestrator.Core.Checkpoints;

namespace Orchestrator.Tests;

/// <summary>The file checkpoint store: bytes back exactly as written, verified on read, nothing outside its folder.</summary>
public class CheckpointStoreTests
{
    static FileCheckpointStore NewStore(long maxBytes = int.MaxValue) => new(Directory.CreateTempSubdirectory("ckpt").FullName, maxBytes);

    static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData((4 << 20) + 17)] // across chunks
    public async Task ACheckpoint_ReadsBackExactly_NamedByItsHash(int length)
    {
        var store = NewStore();
        var data = Bytes(length, length);

        var stored = await store.Write("job-1", 42, data);

        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), stored.Sha256);
        Assert.Equal($"job-1/000000000042-{stored.Sha256}.ckpt", stored.Key);
        Assert.Equal(length, stored.Bytes);
        Assert.Equal(data, await store.Read(stored));
        Assert.Equal([stored.Key], store.Files("job-1").Select(f => f.Key));
        Assert.DoesNotContain(store.Files("job-1"), f => f.Partial);
    }

    [Fact]
    public async Task ADamagedOrResizedCheckpoint_IsRefusedOnRead()
    {
        var store = NewStore();
        var stored = await store.Write("job-1", 1, Bytes(1000, 1));
        var path = Path.Combine(store.Location["directory ".Length..], stored.Key);

        var bytes = File.ReadAllBytes(path);
        bytes[500] ^= 0x40;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("altered or damaged", (await Assert.ThrowsAsync<CheckpointUnreadableException>(() => store.Read(stored))).Message);

        File.WriteAllBytes(path, bytes[..999]);
        Assert.Contains("999 bytes", (await Assert.ThrowsAsync<CheckpointUnreadableException>(() => store.Read(stored))).Message);

        File.Delete(path);
        Assert.Contains("--checkpoint-dir", (await Assert.ThrowsAsync<CheckpointUnreadableException>(() => store.Read(stored))).Message);
    }

    public static TheoryData<string> HostileKeys => new()
    {
        "../../etc/passwd",
        "job-1/../../../etc/passwd",
        "/etc/passwd",
        "job-1/000000000001-" + new string('a', 64) + ".ckpt/../../x",
        "Job-1/000000000001-" + new string('a', 64) + ".ckpt",
        "job-1/1-" + new string('a', 64) + ".ckpt",
        "job-1/000000000001-" + new string('g', 64) + ".ckpt",
    };

    [Theory, MemberData(nameof(HostileKeys))]
    public async Task AReferenceNamingAnythingButACheckpointOfTheStore_IsRefused(string key)
    {
        var store = NewStore();
        await Assert.ThrowsAsync<CheckpointUnreadableException>(() => store.Read(new StoredCheckpoint(key, 10, new string('a', 64))));
        Assert.ThrowsAny<Exception>(() => store.Delete(key));
        Assert.True(File.Exists("/etc/passwd"));
    }

    [Fact]
    public async Task AReferenceClaimingMoreThanTheStoreReads_IsRefusedBeforeAllocation()
    {
        var store = NewStore(maxBytes: 1 << 20);
        var stored = await store.Write("job-1", 1, Bytes(100, 3));
        var e = await Assert.ThrowsAsync<CheckpointUnreadableException>(() => store.Read(stored with { Bytes = long.MaxValue }));
        Assert.Contains("at most 1048576", e.Message);
        await Assert.ThrowsAsync<ArgumentException>(() => store.Write("job-1", 2, new byte[(1 << 20) + 1]));
    }

    [Theory]
    [InlineData("../escape")]
    [InlineData("UPPER")]
    [InlineData("")]
    [InlineData("a/b")]
    public async Task AJobIdThatIsNotOne_IsRefused(string jobId) =>
        await Assert.ThrowsAsync<ArgumentException>(() => NewStore().Write(jobId, 1, new byte[1]));

    [Fact]
    public void Retention_RemovesWhatNoLiveJobKeeps_AndNothingYoungerThanTheGrace()
    {
        var now = new DateTime(2026, 11, 30, 12, 0, 0, DateTimeKind.Utc);
        var grace = TimeSpan.FromMinutes(10);
        StoredFile File(string key, int minutesOld, bool partial = false) => new(key, 100, now.AddMinutes(-minutesOld), partial);
        var files = new[] { File("j/3", 30), File("j/2", 60), File("j/1", 90), File("j/.partial-x", 120, partial: true), File("j/4", 5), File("j/.partial-y", 1, partial: true) };
        var kept = new HashSet<string> { "j/3", "j/2" };

        Assert.Equal(["j/1", "j/.partial-x"], CheckpointRetention.ToRemove(files, live: true, kept, now, grace).Select(f => f.Key));
        Assert.Equal(["j/3", "j/2", "j/1", "j/.partial-x"], CheckpointRetention.ToRemove(files, live: false, kept, now, grace).Select(f => f.Key));
        Assert.True(CheckpointRetention.IsLive(exists: true, ended: false, endedAt: null, now, grace));
        Assert.True(CheckpointRetention.IsLive(exists: true, ended: true, endedAt: now.AddMinutes(-5), now, grace));
        Assert.False(CheckpointRetention.IsLive(exists: true, ended: true, endedAt: now.AddMinutes(-15), now, grace));
        Assert.False(CheckpointRetention.IsLive(exists: false, ended: false, endedAt: null, now, grace));
    }
}

/// <summary>The job grain keeps references (the newest few), refuses references to other jobs' checkpoints, and the
/// workers' cleanup removes what no live job keeps.</summary>
public sealed class CheckpointGrainTests : GrainTestBase
{
    [Fact]
    public async Task TheGrain_KeepsTheNewestReferences_AndRefusesAnotherJobsCheckpoint()
    {
        var node = NewId("node");
        var id = NewId("keep");
        await Submit(id);
        await using var alive = KeepAlive(node, "cpu:0");
        var epoch = (await WaitFor(id, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        var job = Grains.GetGrain<IJobGrain>(id);
        await job.Start(epoch, node);

        foreach (var step in new long[] { 10, 20, 30, 25 }) await job.SaveCheckpoint(epoch, Checkpoint(id, step));
        var foreign = Checkpoint("other-job", 40);
        await Assert.ThrowsAsync<ArgumentException>(() => job.SaveCheckpoint(epoch, foreign));
        await Assert.ThrowsAsync<ArgumentException>(() => job.SaveCheckpoint(epoch, Checkpoint(id, 50) with { Key = $"{id}/../other-job/x" , Sha256 = "short" }));

        var holding = await job.GetCheckpoints();
        Assert.True(holding.Exists);
        Assert.Equal([30L, 20L], holding.Kept.Select(k => k.Step)); // two kept (the default); 25 is older than the newest
        Assert.Equal(30, (await job.GetInfo()).CheckpointStep);
        Assert.False((await Grains.GetGrain<IJobGrain>(NewId("never")).GetCheckpoints()).Exists);
        await job.Cancel("test");
    }

    [Fact]
    public async Task TheJanitor_RemovesAFinishedJobsCheckpoints_AndAnUnknownJobsFolder_ButKeepsALiveJobsNewest()
    {
        var store = new FileCheckpointStore(Directory.CreateTempSubdirectory("ckpt").FullName);
        var node = NewId("node");
        var (live, finished) = (NewId("live"), NewId("done"));
        await Submit(live);
        await Submit(finished);
        await using var alive = KeepAlive(node, "cpu:0", "cpu:1");
        var liveEpoch = (await WaitFor(live, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        var doneEpoch = (await WaitFor(finished, j => j.State == JobState.Scheduled, "scheduled")).Assignment!.AssignmentEpoch;
        await Grains.GetGrain<IJobGrain>(live).Start(liveEpoch, node);
        await Grains.GetGrain<IJobGrain>(finished).Start(doneEpoch, node);
        async Task<CheckpointRef> Save(string job, long epoch, long step)
        {
            var s = await store.Write(job, step, new byte[] { (byte)step });
            var reference = new CheckpointRef(step, s.Key, s.Bytes, s.Sha256, DateTime.UtcNow);
            await Grains.GetGrain<IJobGrain>(job).SaveCheckpoint(epoch, reference);
            return reference;
        }
        foreach (var step in new long[] { 1, 2, 3 }) await Save(live, liveEpoch, step);
        await Save(finished, doneEpoch, 1);
        await Grains.GetGrain<IJobGrain>(finished).Complete(doneEpoch, new JobResult(0.9, 0.3, 1, 1, 1, 1));
        await store.Write("orphan-job", 7, new byte[10]);

        var options = new Orchestrator.Worker.NodeAgentOptions(node, ["cpu:0"]) { CheckpointGrace = TimeSpan.Zero };
        await new Orchestrator.Worker.CheckpointJanitor(Grains, store, options, Microsoft.Extensions.Logging.Abstractions.NullLogger<Orchestrator.Worker.CheckpointJanitor>.Instance).Sweep();

        Assert.Equal([$"{live}"], store.Jobs());
        Assert.Equal(["000000000002", "000000000003"], store.Files(live).Select(f => f.Key.Split('/')[1][..12]));
        await Grains.GetGrain<IJobGrain>(live).Cancel("test");
    }
}
