namespace Orchestrator.Core.Specs;

public enum JobKind { Single, DataParallel }
public enum ModelType { Mlp, Cnn, Dlrm }
public enum OptimizerKind { Sgd, Adam }

/// <summary>auto: the scheduler may train the job in a fused array with compatible jobs; never: always alone.</summary>
public enum FusionMode { Auto, Never }

/// <summary>A validated job spec. Only <see cref="JobSpecParser"/> makes these, so every instance is valid.</summary>
public sealed record JobSpec(
    string Name,
    JobKind Kind,
    string Owner,
    int Priority,
    ModelSpec Model,
    DataSpec Data,
    TrainSpec Train,
    ResourceSpec Resources,
    FusionMode Fusion = FusionMode.Auto,
    DataParallelSpec? DataParallel = null,
    EmbeddingSpec? Embedding = null);

public enum FaultToleranceMode { None, ErasureCoding, Checkpoint }

/// <summary>How a recommendation job's embedding shards survive a lost silo: erasure coding with k data and r parity
/// shards per group (k = 0: chosen by the cluster from its live silos, 2 to 4), checkpoints every
/// <paramref name="Interval"/> steps (the baseline), or nothing.</summary>
public sealed record FaultTolerance(FaultToleranceMode Mode, int K, int R, int Interval);

/// <summary>A recommendation job's embedding: <paramref name="Shards"/> shard grains (0: two per coding group), their
/// Adagrad learning rate, and how they are protected.</summary>
public sealed record EmbeddingSpec(int Shards, double Lr, FaultTolerance FaultTolerance);

/// <summary>A data-parallel job: between <paramref name="MinWorkers"/> and <paramref name="MaxWorkers"/> ranks, one device each,
/// each with train.batchSize samples per step, combining gradients with <paramref name="Gradients"/>.</summary>
public sealed record DataParallelSpec(int MinWorkers, int MaxWorkers, Orchestrator.Core.Collectives.GradientCombine Gradients);

/// <param name="Hidden">MLP hidden layer widths, input to output.</param>
/// <param name="Channels">CNN: output channels of its two 3×3 convolutions (each followed by 2×2 max pooling).</param>
/// <param name="FcHidden">CNN: width of the hidden fully connected layer.</param>
/// <param name="Dim">DLRM: embedding width (and the bottom MLP's output); <paramref name="Hidden"/> is its bottom MLP,
/// <paramref name="Top"/> its top MLP, <paramref name="TableRows"/> the rows of each of its 26 tables.</param>
public sealed record ModelSpec(ModelType Type, IReadOnlyList<int> Hidden, IReadOnlyList<int> Channels, int FcHidden,
    int Dim = 0, IReadOnlyList<int>? Top = null, int TableRows = 0)
{
    public bool Equals(ModelSpec? other) =>
        other is not null && Type == other.Type && FcHidden == other.FcHidden && Dim == other.Dim && TableRows == other.TableRows &&
        Hidden.SequenceEqual(other.Hidden) && Channels.SequenceEqual(other.Channels) && (Top ?? []).SequenceEqual(other.Top ?? []);

    public override int GetHashCode() => HashCode.Combine(Type, FcHidden, Hidden.Count, Channels.Count);
}

/// <param name="TrainLimit">Use only the first N training images (0 = all); for quick runs and tests.</param>
/// <param name="TestExamples">Criteo: the file's first N examples are held out for evaluation.</param>
public sealed record DataSpec(string Dataset, string Path, int TrainLimit, int TestExamples = 0);

/// <param name="Epochs">Passes over the training set; exclusive with <paramref name="Steps"/>.</param>
/// <param name="Steps">Optimizer steps; when set, epochs are derived from it.</param>
/// <param name="CheckpointEvery">Steps between checkpoints sent to the job grain.</param>
public sealed record TrainSpec(
    int Epochs,
    long Steps,
    int BatchSize,
    OptimizerKind Optimizer,
    double Lr,
    double Momentum,
    double WeightDecay,
    double Beta1,
    double Beta2,
    double Eps,
    int Seed,
    int CheckpointEvery);

public sealed record ResourceSpec(int Devices);

public sealed record SpecError(string Field, string Message)
{
    public override string ToString() => $"{Field}: {Message}";
}

public sealed class SpecValidationException(IReadOnlyList<SpecError> errors)
    : Exception(string.Join(Environment.NewLine, errors.Select(e => e.ToString())))
{
    public IReadOnlyList<SpecError> Errors { get; } = errors;
}

public static class FashionMnistFiles
{
    public const string DefaultPath = "/usr/share/datasets/fashion-mnist";
    public const string TrainImages = "train-images-idx3-ubyte.gz";
    public const string TrainLabels = "train-labels-idx1-ubyte.gz";
    public const string TestImages = "t10k-images-idx3-ubyte.gz";
    public const string TestLabels = "t10k-labels-idx1-ubyte.gz";
    public const int TrainCount = 60_000;
    public const int TestCount = 10_000;
    public static readonly string[] All = [TrainImages, TrainLabels, TestImages, TestLabels];
}
