using System.Diagnostics;
using Orchestrator.Core.Checkpoints;

namespace Orchestrator.Tests;

/// <summary>
/// Checkpoints larger than the control plane could ever carry: a checkpoint over Orleans' 100 MB message limit (an MLP
/// with hidden [4096, 4096]) tore its worker's connection down thousands of times and took the node off the cluster.
/// Through the checkpoint store a 1 GB checkpoint is written, read back verified, and resumed from on another node.
/// </summary>
[Collection("processes")]
public sealed class CheckpointProcessTests(ITestOutputHelper output) : ProcessClusterTest(output)
{
    [Fact]
    public async Task AOneGigabyteCheckpoint_GoesThroughTheStore_AndTheJobResumesFromItAfterItsWorkerIsKilled()
    {
        await Cluster.StartSilo();
        var first = Cluster.StartWorker("w1");
        await Cluster.ConnectClient();
        // 784·8192 + 2·8192² + 8192·10 ≈ 141 M parameters, with their momentum: 1.13 GB per checkpoint.
        var id = await Cluster.SubmitWithCli("""
            name: big
            model: {type: mlp, hidden: [8192, 8192, 8192]}
            data: {dataset: fashion-mnist, trainLimit: 512}
            train: {steps: 12, batchSize: 16, optimizer: sgd, lr: 0.001, momentum: 0.9, checkpointEvery: 3}
            """);
        var running = await Cluster.WaitFor(id, j => j.CheckpointStep >= 3, "checkpointed", TimeSpan.FromSeconds(300));

        var holding = await Cluster.Grains.GetGrain<IJobGrain>(id).GetCheckpoints();
        var newest = holding.Kept[0];
        Assert.True(newest.Bytes >= 1_000_000_000, $"the checkpoint has {newest.Bytes} bytes");
        // The store's own speed on this machine, on the checkpoint the worker wrote: read back verified, and written again.
        var store = new FileCheckpointStore(Cluster.CheckpointFolder);
        var clock = Stopwatch.StartNew();
        var bytes = await store.Read(new StoredCheckpoint(newest.Key, newest.Bytes, newest.Sha256));
        var readSeconds = clock.Elapsed.TotalSeconds;
        clock.Restart();
        var copy = await new FileCheckpointStore(Directory.CreateTempSubdirectory("ckpt-copy").FullName).Write(id, newest.Step, bytes);
        var writeSeconds = clock.Elapsed.TotalSeconds;
        Assert.Equal(newest.Sha256, copy.Sha256);
        output.WriteLine($"checkpoint of step {newest.Step}: {newest.Bytes / 1e9:F2} GB; store read (verified) {newest.Bytes / 1e6 / readSeconds:F0} MB/s, write (hashed, fsynced) {newest.Bytes / 1e6 / writeSeconds:F0} MB/s");
        bytes = null;
        GC.Collect();

        var victim = running.Assignment!.NodeId;
        first.Kill();
        var atKill = await Cluster.Grains.GetGrain<IJobGrain>(id).GetInfo();
        Cluster.StartWorker("w2");
        var done = await Cluster.WaitFor(id, j => j.State == JobState.Succeeded, "succeeded", TimeSpan.FromSeconds(300));
        var events = await Cluster.Events(id);

        var resume = events.Single(e => e.Source == "w2" && e.Kind == JobEventKind.Started);
        Assert.Equal(atKill.CheckpointStep, resume.ResumeStep);
        Assert.True(resume.ResumeStep >= 3);
        Assert.Equal(1, done.Recoveries);
        Assert.Equal(12, done.Result!.Steps);
        Assert.Equal("w1", victim);
        // The worker that resumed read the checkpoint from the shared store (a worker log line says how fast it wrote them).
        Assert.Contains(Cluster.Workers["w2"].Output.Split('\n'), l => l.Contains($"Job {id}: checkpoint of step") && l.Contains("MB/s"));
    }
}
