using Orchestrator.Grains;
using Orchestrator.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Orchestrator.Tests;

/// <summary>
/// A DLRM job through real processes: redis-server, 4 silos, a worker and the CLI (which also writes the
/// Criteo-format data). A silo killed with SIGKILL mid-training costs no step, and the final embedding tables equal
/// those of the same job run without a failure, bit for bit.
/// </summary>
[Collection("processes")]
public sealed class RecommendationProcessTests(ITestOutputHelper output) : IAsyncLifetime
{
    readonly ProcessCluster _cluster = new(output);

    public Task InitializeAsync() => Task.CompletedTask;
    public Task DisposeAsync() => _cluster.DisposeAsync().AsTask();

    [Fact]
    public async Task AKilledSilo_CostsNoStep_AndTheTablesEqualAFailureFreeRun()
    {
        var silos = new List<(ChildProcess Process, int SiloPort)>();
        for (int i = 0; i < 4; i++) silos.Add(await _cluster.StartSilo());
        _cluster.StartWorker("w1");
        await _cluster.ConnectClient();
        var data = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "clicks.tsv");
        var synth = _cluster.Track(ChildProcess.Dotnet("orch-data", Repo.Cli, "data", "criteo-synth", "--out", data, "--rows", "12000", "--seed", "3"));
        Assert.Equal(0, await synth.WaitForExit(TimeSpan.FromSeconds(60)));
        var spec = $$$"""
            name: ctr
            model: {type: dlrm, dim: 8, bottom: [32], top: [32], tableRows: 500}
            data: {dataset: criteo, path: {{{data}}}, testExamples: 2000}
            train: {epochs: 3, batchSize: 64, optimizer: adam, lr: 0.002, seed: 4}
            embedding: {shards: 6, lr: 0.05, faultTolerance: {k: 3, r: 1}}
            """;

        var withFailure = await _cluster.SubmitWithCli(spec);
        await _cluster.WaitFor(withFailure, j => j.Progress?.Step >= 100, "100 steps in", TimeSpan.FromSeconds(120));
        var config = new ShardConfig(withFailure, K: 3, R: 1, Shards: 6, Dim: 8, TotalRows: 26 * 500, Seed: 4, Lr: 0.05f);
        var victimKey = ShardConfig.Key(withFailure, 0, 1);
        var victimSilo = (await _cluster.Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status()).Silo;
        var victimPort = SiloAddress.FromParsableString(victimSilo).Endpoint.Port;
        silos.Single(s => s.SiloPort == victimPort).Process.Kill();
        var failed = await _cluster.WaitFor(withFailure, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(240));
        var events = await _cluster.Events(withFailure);

        var clean = await _cluster.SubmitWithCli(spec);
        var reference = await _cluster.WaitFor(clean, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(240));
        var tables = await Task.WhenAll(Enumerable.Range(0, 6).Select(s => _cluster.Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(withFailure, s / 3, s % 3)).Copy(config)));
        var referenceTables = await Task.WhenAll(Enumerable.Range(0, 6).Select(s =>
            _cluster.Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(clean, s / 3, s % 3)).Copy(config with { JobId = clean })));
        var rebuilt = await _cluster.Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status();
        output.WriteLine($"with a silo killed: AUC {failed.Result!.Auc:F4}, log loss {failed.Result.LogLoss:F4}; failure-free: AUC {reference.Result!.Auc:F4}; rebuild {rebuilt.RebuildMilliseconds:F0} ms, {rebuilt.BytesRead} bytes read");

        Assert.Equal(reference.Result.Steps, failed.Result.Steps);
        Assert.Equal(0, failed.Recoveries);
        Assert.True(rebuilt.Rebuilt && rebuilt.Silo != victimSilo);
        Assert.Contains(events, e => e.What.Contains("embedding shard 0/1 rebuilt"));
        for (int s = 0; s < 6; s++)
        {
            Assert.True(tables[s].Available && referenceTables[s].Available);
            Assert.True(referenceTables[s].Bytes.AsSpan().SequenceEqual(tables[s].Bytes), $"shard {s} differs from the failure-free run");
        }
        Assert.Equal(reference.Result.Auc, failed.Result.Auc);
        Assert.True(failed.Result.Auc > 0.70, $"AUC {failed.Result.Auc} should be well above the base rate's 0.5");
    }
}
