namespace Orchestrator.Tests;

/// <summary>
/// A DLRM job through real processes: redis-server, 4 silos, workers and the CLI (which also writes the
/// Criteo-format data). A silo is killed with SIGKILL mid-training: with erasure coding (a data-parallel job on two
/// workers) no step is lost; with the checkpoint baseline (one worker) the job rolls back and trains the lost steps
/// again. Either way the final embedding tables equal those of the same job run without a failure, bit for bit.
/// </summary>
[Collection("processes")]
public sealed class RecommendationProcessTests(ITestOutputHelper output) : ProcessClusterTest(output)
{
    const int Shards = 6, TableRows = 500, Dim = 8, Seed = 4;

    /// <summary>Runs the job with a silo killed at step 100 or later, then the same job without a failure.</summary>
    async Task<(JobInfo Failed, JobInfo Reference, IReadOnlyList<JobEvent> Events, ShardStatus Victim, string VictimSilo, byte[][] Tables, byte[][] ReferenceTables)>
        KillASiloDuringTheJob(string faultTolerance, int k, int r, int workers)
    {
        var silos = new List<(ChildProcess Process, int SiloPort)>();
        for (int i = 0; i < 4; i++) silos.Add(await Cluster.StartSilo());
        for (int w = 1; w <= workers; w++) Cluster.StartWorker($"w{w}");
        await Cluster.ConnectClient();
        var data = Path.Combine(Directory.CreateTempSubdirectory("criteo").FullName, "clicks.tsv");
        var synth = Cluster.Track(ChildProcess.Dotnet("orch-data", Repo.Cli, "data", "criteo-synth", "--out", data, "--rows", "12000", "--seed", "3"));
        Assert.Equal(0, await synth.WaitForExit(TimeSpan.FromSeconds(60)));
        var kind = workers > 1 ? $"kind: data-parallel\nworkers: {{min: {workers}, max: {workers}}}\ngradients: average\n" : "";
        var spec = kind + $$$"""
            name: ctr
            model: {type: dlrm, dim: {{{Dim}}}, bottom: [32], top: [32], tableRows: {{{TableRows}}}}
            data: {dataset: criteo, path: {{{data}}}, testExamples: 2000}
            train: {epochs: 3, batchSize: 64, optimizer: adam, lr: 0.002, seed: {{{Seed}}}}
            embedding: {shards: {{{Shards}}}, lr: 0.05, faultTolerance: {{{faultTolerance}}}}
            """;

        var withFailure = await Cluster.SubmitWithCli(spec);
        var running = await Cluster.WaitFor(withFailure, j => j.Progress?.Step >= 100, "100 steps in", TimeSpan.FromSeconds(120));
        if (workers > 1) Assert.Equal(workers, running.Ranks!.Select(a => a.NodeId).Distinct().Count());
        var victimKey = ShardConfig.Key(withFailure, 0, 1);
        var victimSilo = (await Cluster.Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status()).Silo;
        var victimPort = SiloAddress.FromParsableString(victimSilo).Endpoint.Port;
        silos.Single(s => s.SiloPort == victimPort).Process.Kill();
        var failed = await Cluster.WaitFor(withFailure, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(240));
        var events = await Cluster.Events(withFailure);
        var clean = await Cluster.SubmitWithCli(spec);
        var reference = await Cluster.WaitFor(clean, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(240));

        async Task<byte[][]> Tables(string job)
        {
            var config = new ShardConfig(job, k, r, Shards, Dim, 26L * TableRows, Seed, 0.05f);
            var copies = await Task.WhenAll(Enumerable.Range(0, Shards).Select(s => Cluster.Grains.GetGrain<IEmbeddingShardGrain>(ShardConfig.Key(job, s / k, s % k)).Copy(config)));
            Assert.All(copies, c => Assert.True(c.Available));
            return copies.Select(c => c.Bytes).ToArray();
        }
        var victim = await Cluster.Grains.GetGrain<IEmbeddingShardGrain>(victimKey).Status();
        output.WriteLine($"with a silo killed: {failed.Result!.Steps} steps, AUC {failed.Result.Auc:F4}, {failed.Result.TrainingSeconds:F1} s; failure-free: AUC {reference.Result!.Auc:F4}, {reference.Result.TrainingSeconds:F1} s");
        return (failed, reference, events, victim, victimSilo, await Tables(withFailure), await Tables(clean));
    }

    static void AssertSameTables(byte[][] actual, byte[][] expected)
    {
        for (int s = 0; s < expected.Length; s++)
            Assert.True(expected[s].AsSpan().SequenceEqual(actual[s]), $"shard {s} differs from the failure-free run");
    }

    [Fact]
    public async Task WithErasureCoding_AKilledSiloCostsTwoWorkersNoStep_AndTheTablesEqualAFailureFreeRun()
    {
        var run = await KillASiloDuringTheJob("{k: 3, r: 1}", k: 3, r: 1, workers: 2);

        Assert.Equal(run.Reference.Result!.Steps, run.Failed.Result!.Steps);
        Assert.Equal(0, run.Failed.Recoveries);
        Assert.True(run.Victim.Rebuilt && run.Victim.Silo != run.VictimSilo);
        Assert.Contains(run.Events, e => e.Kind == JobEventKind.ShardRebuilt && e.Shard == "0/1" && e.Bytes > 0);
        Assert.DoesNotContain(run.Events, e => e.Kind == JobEventKind.RolledBack);
        AssertSameTables(run.Tables, run.ReferenceTables);
        Assert.Equal(run.Reference.Result.Auc, run.Failed.Result.Auc);
        Assert.True(run.Failed.Result.Auc > 0.70, $"AUC {run.Failed.Result.Auc} should be well above the base rate's 0.5");
    }

    [Fact]
    public async Task WithCheckpoints_AKilledSiloRollsTheJobBack_WhichTrainsTheLostStepsAgainToTheSameTables()
    {
        var run = await KillASiloDuringTheJob("{checkpoint: 50}", k: Shards, r: 0, workers: 1);

        var rollback = Assert.Single(run.Events, e => e.Kind == JobEventKind.RolledBack);
        long from = rollback.Step!.Value, to = rollback.ResumeStep!.Value;
        Assert.Equal(0, to % 50);
        Assert.True(from > to, rollback.Message);
        Assert.Equal(run.Reference.Result!.Steps, run.Failed.Result!.Steps);
        AssertSameTables(run.Tables, run.ReferenceTables);
        Assert.Equal(run.Reference.Result.Auc, run.Failed.Result.Auc);
    }
}
