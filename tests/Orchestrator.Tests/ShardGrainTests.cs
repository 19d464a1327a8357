using Orchestrator.Worker.Recommendation;
using Orchestrator.Core.Recommendation;
using Orleans.Configuration;
using Orleans.Storage;
using Orleans.TestingHost;

namespace Orchestrator.Tests;

/// <summary>
/// Erasure-coded embedding shards as grains on 4 in-process silos (grain storage in a real redis-server): every
/// shard of a coding group on a different silo, and a silo killed mid-training rebuilds its shards from their
/// groups so that the final tables equal a failure-free run bit for bit.
/// </summary>
[Collection("processes")]
public sealed class ShardGrainTests : IAsyncLifetime
{
    readonly (ChildProcess Process, int Port) _redis = ProcessCluster.StartRedis();
    InProcessTestCluster _cluster = null!;

    static readonly ShardConfig Config = new("rec-test", K: 3, R: 1, Shards: 6, Dim: 8, TotalRows: 3000, Seed: 5, Lr: 0.05f);

    public async Task InitializeAsync()
    {
        var builder = new InProcessTestClusterBuilder(4);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddRedisGrainStorage(StorageNames.State, ob => ob.Configure<Orleans.Serialization.Serializer>((o, serializer) =>
            {
                o.ConfigurationOptions = StackExchange.Redis.ConfigurationOptions.Parse($"127.0.0.1:{_redis.Port}");
                o.GrainStorageSerializer = new OrleansGrainStorageSerializer(serializer);
            }));
            silo.AddMemoryGrainStorage(StorageNames.Checkpoints);
            silo.AddOrchestrator();
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
                o.NumVotesForDeathDeclaration = 1;
            });
        });
        _cluster = builder.Build();
        await _cluster.DeployAsync();
        await _cluster.WaitForLivenessToStabilizeAsync();
    }

    public async Task DisposeAsync()
    {
        await _cluster.DisposeAsync();
        _redis.Process.Dispose();
    }

    IGrainFactory Grains => _cluster.Client;

    /// <summary>Step s touches a deterministic set of ids with deterministic gradients, like a worker's batch.</summary>
    static (long[] Ids, float[] Gradients) Batch(long step)
    {
        var ids = Enumerable.Range(0, 120).Select(n => (n * 977L + step * 131) % Config.TotalRows).Distinct().ToArray();
        var gradients = ids.SelectMany(id => Enumerable.Range(0, Config.Dim).Select(c => (float)Math.Sin(step * 0.7 + id * 0.013 + c))).ToArray();
        return (ids, gradients);
    }

    /// <summary>A worker's step against the shard grains: one lookup and one update call per shard, retried until
    /// the shard answers (a shard on a dead silo is rebuilt on its next call).</summary>
    async Task GrainStep(EmbeddingLayout layout, long step)
    {
        var (ids, gradients) = Batch(step);
        await Task.WhenAll(Enumerable.Range(0, ids.Length).GroupBy(n => layout.ShardOf(ids[n])).Select(async shard =>
        {
            var rows = Shard(shard.Select(n => layout.LocalRow(ids[n])).ToArray());
            var grads = shard.SelectMany(n => gradients.Skip(n * Config.Dim).Take(Config.Dim)).ToArray();
            var grain = Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(Config.JobId, shard.Key / Config.K, shard.Key % Config.K));
            await Retry(() => grain.Lookup(Config, step, rows));
            await Retry(() => grain.Update(Config, step, rows, System.Runtime.InteropServices.MemoryMarshal.AsBytes(grads.AsSpan()).ToArray(), writer: 1));
        }));
    }

    static byte[] Shard(int[] rows) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.AsSpan()).ToArray();

    static async Task Retry(Func<Task> call)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                await call();
                return;
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(200);
            }
        }
    }

    [Fact]
    public async Task AShard_RefusesAStaleWriter_AndNonFiniteGradients_WithoutApplyingThem()
    {
        var config = Config with { JobId = "fence-test" };
        var shard = Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, 0, 0));
        var rows = Shard([1, 2]);
        byte[] Grads(float value) => System.Runtime.InteropServices.MemoryMarshal.AsBytes(Enumerable.Repeat(value, 2 * config.Dim).ToArray().AsSpan()).ToArray();
        await shard.Update(config, 1, rows, Grads(0.5f), writer: 3);
        await shard.Fence(config, writer: 5); // a new assignment took the job over
        var before = (await shard.Copy(config)).Bytes;

        var stale = await Assert.ThrowsAsync<StaleWriterException>(() => shard.Update(config, 2, rows, Grads(0.5f), writer: 3));
        var nan = await Assert.ThrowsAsync<ArgumentException>(() => shard.Update(config, 2, rows, Grads(float.NaN), writer: 5));

        Assert.Contains("epoch 5", stale.Message);
        Assert.Contains("non-finite", nan.Message);
        var after = await shard.Copy(config);
        Assert.Equal(before, after.Bytes);
        Assert.Equal(1, after.Version);
        await shard.Update(config, 2, rows, Grads(0.5f), writer: 5);
        Assert.Equal(2, (await shard.Copy(config)).Version);
    }

    async Task<Dictionary<int, SiloAddress>[]> Placements() =>
        await Task.WhenAll(Enumerable.Range(0, Config.Groups).Select(g => Grains.GetGrain<ICodingGroupGrain>($"{Config.JobId}/{g}").Placements()));

    [Fact]
    public async Task AKilledSilo_ItsShardsAreRebuiltElsewhere_AJoiningSiloSpreadsThemAgain_AndTheTablesEndBitIdenticalToAFailureFreeRun()
    {
        var layout = new EmbeddingLayout([(int)Config.TotalRows], Config.Dim, Config.Shards);
        var reference = new LocalEmbeddingStore(layout, Config.Seed, Config.Lr);
        for (long s = 1; s <= 45; s++)
        {
            var (ids, gradients) = Batch(s);
            await reference.Update(s, ids, gradients);
        }

        for (long s = 1; s <= 12; s++) await GrainStep(layout, s);
        var before = await Placements();
        var victimKey = ShardConfig.Key(Config.JobId, 0, 1);
        var victimSilo = SiloAddress.FromParsableString((await Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status()).Silo);
        await _cluster.KillSiloAsync(_cluster.Silos.Single(h => h.SiloAddress.Equals(victimSilo)));
        for (long s = 13; s <= 30; s++) await GrainStep(layout, s);
        var after = await Placements();
        var rebuilt = await Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status();

        // A silo joins: each group moves one of the two members sharing a silo onto it, and training goes on.
        var joined = (await _cluster.StartAdditionalSiloAsync()).SiloAddress;
        var spread = after;
        for (var deadline = DateTime.UtcNow.AddSeconds(60); DateTime.UtcNow < deadline && !spread.All(g => g.Values.Distinct().Count() == 4); await Task.Delay(250))
            spread = await Placements();
        var shards = Enumerable.Range(0, Config.Groups).SelectMany(g => Enumerable.Range(0, Config.K + Config.R).Select(m => ShardConfig.Key(Config.JobId, g, m))).ToList();
        for (long s = 31; s <= 45; s++) await GrainStep(layout, s);
        var statuses = await Task.WhenAll(shards.Select(key => key.EndsWith($"/{Config.K}", StringComparison.Ordinal)
            ? Grains.GetGrain<IParityShardGrain>(key).Status() : Grains.GetGrain<IEmbeddingShardGrain>(key).Status()));
        var tables = await Task.WhenAll(Enumerable.Range(0, Config.Shards).Select(s =>
            Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(Config.JobId, s / Config.K, s % Config.K)).Copy(Config)));

        Assert.All(before, group => Assert.Equal(Config.K + Config.R, group.Values.Distinct().Count()));
        // k + r = 4 shards on the 3 silos left: two share a silo (the group has less protection until a silo joins).
        Assert.All(after, group => Assert.Equal(3, group.Values.Distinct().Count()));
        Assert.DoesNotContain(victimSilo, after.SelectMany(g => g.Values));
        Assert.True(rebuilt.Rebuilt, "the victim's shard should have been rebuilt");
        Assert.True(rebuilt.BytesRead >= Config.K * layout.ShardBytes);
        Assert.All(spread, group => Assert.Equal(4, group.Values.Distinct().Count()));
        Assert.All(spread, group => Assert.Contains(joined, group.Values));
        // Each shard answers from the silo its group records, and the one moved to the new silo was rebuilt there.
        var recorded = spread.SelectMany((g, i) => g.Select(kv => (Key: ShardConfig.Key(Config.JobId, i, kv.Key), Silo: kv.Value.ToParsableString()))).ToDictionary(x => x.Key, x => x.Silo);
        Assert.All(shards.Zip(statuses), x => Assert.Equal(recorded[x.First], x.Second.Silo));
        Assert.All(shards.Zip(statuses).Where(x => x.Second.Silo == joined.ToParsableString()), x => Assert.True(x.Second.Rebuilt, $"{x.First} moved without a rebuild"));
        for (int s = 0; s < Config.Shards; s++)
        {
            Assert.True(reference.Data[s].Bytes.AsSpan().SequenceEqual(tables[s].Bytes), $"shard {s} differs from the failure-free run");
            Assert.Equal(reference.Data[s].Version, tables[s].Version);
        }
    }

    [Fact]
    public async Task ADlrmTrainedThroughShardGrains_GoesOnThroughASiloKill_AndEndsIdenticalToALocalRun()
    {
        var tables = Enumerable.Repeat(500, CriteoFormat.CategoricalFeatures).ToArray();
        var path = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "clicks.tsv");
        CriteoSynth.Write(path, 5000, seed: 2);
        var examples = CriteoFormat.Read(path, tables).ToList();
        var config = new ShardConfig("dlrm-test", K: 3, R: 1, Shards: 6, Dim: 8, TotalRows: tables.Sum(), Seed: 9, Lr: 0.05f);
        var layout = new EmbeddingLayout(tables, config.Dim, config.Shards);
        var shape = new Orchestrator.Worker.Training.DlrmShape(config.Dim, tables, [32], [32]);

        async Task<(double LogLoss, double Auc, double Accuracy)> Train(IEmbeddingStore store, Func<long, Task>? afterStep = null)
        {
            using var dlrm = new Orchestrator.Worker.Training.DlrmTrainer(shape, layout, store, seed: 9, lr: 0.002);
            for (int start = 0; start + 64 <= 4000; start += 64)
            {
                await dlrm.TrainStep(examples[start..(start + 64)]);
                if (afterStep is not null) await afterStep(dlrm.Step);
            }
            return await dlrm.Evaluate(examples[4000..]);
        }

        var local = new LocalEmbeddingStore(layout, config.Seed, config.Lr);
        var expected = await Train(local);
        var killed = false;
        var actual = await Train(new ShardedEmbeddingStore(Grains, config, layout), async step =>
        {
            if (step != 20) return;
            var victim = SiloAddress.FromParsableString((await Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, 1, 0)).Status()).Silo);
            await _cluster.KillSiloAsync(_cluster.Silos.Single(h => h.SiloAddress.Equals(victim)));
            killed = true;
        });
        var shards = await Task.WhenAll(Enumerable.Range(0, config.Shards).Select(s =>
            Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, s / config.K, s % config.K)).Copy(config)));

        Assert.True(killed);
        Assert.Equal(expected, actual); // the same log loss, AUC and accuracy, exactly
        for (int s = 0; s < config.Shards; s++)
            Assert.True(local.Data[s].Bytes.AsSpan().SequenceEqual(shards[s].Bytes), $"shard {s} differs from the local run");
        Assert.True((await Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(config.JobId, 1, 0)).Status()).Rebuilt);
    }
}
