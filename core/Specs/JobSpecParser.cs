using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Orchestrator.Core.Specs;

public sealed record SpecValidationOptions
{
    /// <summary>Check that dataset files exist. The CLI and workers do; silos skip it (data lives on workers).</summary>
    public bool CheckFiles { get; init; } = true;
}

/// <summary>
/// Validates a spec tree and builds a <see cref="JobSpec"/>. Every problem is reported with the dotted
/// path of the field and the reason; all problems are collected, not only the first.
/// </summary>
public static partial class JobSpecParser
{
    public static JobSpec Parse(string text, SpecValidationOptions? options = null) =>
        FromNode(ParseDocument(text), options);

    public static SpecNode ParseDocument(string text)
    {
        try { return SpecDocument.Parse(text); }
        catch (SpecFormatException e) { throw new SpecValidationException([new SpecError("(document)", e.Message)]); }
    }

    public static JobSpec FromNode(SpecNode root, SpecValidationOptions? options = null)
    {
        options ??= new SpecValidationOptions();
        var r = new Reader();
        if (root is not SpecMap map)
        {
            throw new SpecValidationException([new SpecError("(document)", $"a job spec is a map of fields (name, model, data, train, ...), got {SpecDocument.Describe(root)}")]);
        }
        var spec = ReadSpec(r, map, options);
        if (r.Errors.Count > 0 || spec is null) throw new SpecValidationException(r.Errors);
        return spec;
    }

    /// <summary>The index of the first character that is invisible or changes how text around it shows (controls,
    /// zero-width and bidirectional formatting, separators other than space, private use, lone surrogates), if any.</summary>
    static int? Unprintable(string text)
    {
        for (int i = 0; i < text.Length;)
        {
            if (System.Text.Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var length) != System.Buffers.OperationStatus.Done
                || System.Text.Rune.GetUnicodeCategory(rune) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
                    or UnicodeCategory.ParagraphSeparator or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned)
                return i;
            i += length;
        }
        return null;
    }

    static JobSpec? ReadSpec(Reader r, SpecMap root, SpecValidationOptions options)
    {
        var top = r.Fields(root, "", ["name", "kind", "owner", "priority", "model", "data", "train", "resources", "fusion", "workers", "gradients", "embedding"]);
        var name = r.String(top, "name", null, required: true);
        if (name is not null && !NamePattern().IsMatch(name))
            r.Error("name", $"'{SpecDocument.Truncate(name)}' is not a valid job name: use 1-63 lowercase letters, digits and '-', starting with a letter or digit");
        var kind = r.Enum(top, "kind", JobKind.Single, new() { ["single"] = JobKind.Single, ["data-parallel"] = JobKind.DataParallel });
        var owner = r.String(top, "owner", "default") ?? "default";
        if (owner.Length is 0 or > 63) r.Error("owner", "must be 1-63 characters");
        var priority = (int)r.Integer(top, "priority", 0, -1000, 1000);
        var fusion = r.Enum(top, "fusion", FusionMode.Auto, new() { ["auto"] = FusionMode.Auto, ["never"] = FusionMode.Never });

        var model = ReadModel(r, r.Section(top, "model", required: true));
        var data = ReadData(r, r.Section(top, "data", required: true), options);
        var train = ReadTrain(r, r.Section(top, "train", required: false));
        var resourcesMap = r.Fields(r.Section(top, "resources", required: false), "resources", ["devices"]);
        var devices = (int)r.Integer(resourcesMap, "devices", 1, 1, 1024);
        if (devices != 1)
            r.Error("resources.devices", kind == JobKind.Single
                ? $"a single job trains on exactly 1 device, got {devices}"
                : $"each data-parallel worker uses 1 device; set the number of workers with workers: {{min, max}}, got {devices}");
        DataParallelSpec? dataParallel = null;
        if (kind == JobKind.DataParallel)
        {
            var workersMap = r.Fields(r.Section(top, "workers", required: true), "workers", ["min", "max"]);
            var min = (int)r.Integer(workersMap, "min", 1, 1, 4096);
            var max = (int)r.Integer(workersMap, "max", min, 1, 4096);
            if (max < min) r.Error("workers.max", $"must be at least workers.min ({min}), got {max}");
            var gradients = r.Enum(top, "gradients", Orchestrator.Core.Collectives.GradientCombine.Adasum, new()
            {
                ["adasum"] = Orchestrator.Core.Collectives.GradientCombine.Adasum,
                ["average"] = Orchestrator.Core.Collectives.GradientCombine.Average,
                ["sum"] = Orchestrator.Core.Collectives.GradientCombine.Sum,
            });
            if (workersMap is not null) dataParallel = new DataParallelSpec(min, Math.Max(min, max), gradients);
        }
        else
        {
            r.Forbid(top, "workers", "only a data-parallel job has workers; set kind: data-parallel");
            r.Forbid(top, "gradients", "only a data-parallel job combines gradients; set kind: data-parallel");
        }

        EmbeddingSpec? embedding = null;
        if (model?.Type == ModelType.Dlrm)
        {
            embedding = ReadEmbedding(r, r.Section(top, "embedding", required: false));
            if (data is not null && data.Dataset != "criteo") r.Error("data.dataset", "a dlrm trains on click logs: use dataset: criteo");
            if (kind == JobKind.DataParallel && embedding?.FaultTolerance.Mode == FaultToleranceMode.Checkpoint)
                r.Error("embedding.faultTolerance", "the checkpoint baseline rolls back a job on one worker; use kind: single, or erasureCoding for a data-parallel dlrm job");
        }
        else
        {
            r.Forbid(top, "embedding", "only a dlrm model has an embedding; set model.type: dlrm");
            if (data?.Dataset == "criteo") r.Error("data.dataset", "criteo click logs are for model.type: dlrm");
        }

        if (name is null || model is null || data is null || train is null || (kind == JobKind.DataParallel && dataParallel is null)) return null;
        return new JobSpec(name, kind, owner, priority, model, data, train, new ResourceSpec(devices), fusion, dataParallel, embedding);
    }

    static ModelSpec? ReadModel(Reader r, SpecMap? map)
    {
        if (map is null) return null;
        var m = r.Fields(map, "model", ["type", "hidden", "channels", "fc", "dim", "bottom", "top", "tableRows"]);
        var type = r.Enum(m, "type", (ModelType?)null, new() { ["mlp"] = ModelType.Mlp, ["cnn"] = ModelType.Cnn, ["dlrm"] = ModelType.Dlrm });
        if (type is null) return null;
        if (type != ModelType.Dlrm)
            foreach (var f in new[] { "dim", "bottom", "top", "tableRows" }) r.Forbid(m, f, "only a dlrm has dim, bottom, top and tableRows");
        if (type == ModelType.Dlrm)
        {
            foreach (var f in new[] { "hidden", "channels", "fc" }) r.Forbid(m, f, "a dlrm's layers are set with dim, bottom and top");
            var dim = (int)r.Integer(m, "dim", 16, 1, 1024);
            var bottom = r.IntList(m, "bottom", [64], minCount: 1, maxCount: 8, min: 1, max: 8192);
            var topLayers = r.IntList(m, "top", [64], minCount: 1, maxCount: 8, min: 1, max: 8192);
            var rows = (int)r.Integer(m, "tableRows", 10_000, 1, 50_000_000);
            return bottom is null || topLayers is null ? null : new ModelSpec(ModelType.Dlrm, bottom, [], 0, dim, topLayers, rows);
        }
        if (type == ModelType.Mlp)
        {
            r.Forbid(m, "channels", "only a cnn has channels");
            r.Forbid(m, "fc", "only a cnn has fc; an mlp's layers are all in hidden");
            var hidden = r.IntList(m, "hidden", [256, 128], minCount: 1, maxCount: 8, min: 1, max: 8192);
            return hidden is null ? null : new ModelSpec(ModelType.Mlp, hidden, [], 0);
        }
        r.Forbid(m, "hidden", "a cnn's layers are set with channels and fc");
        var channels = r.IntList(m, "channels", [32, 64], minCount: 2, maxCount: 2, min: 1, max: 1024);
        var fc = (int)r.Integer(m, "fc", 128, 1, 8192);
        return channels is null ? null : new ModelSpec(ModelType.Cnn, [], channels, fc);
    }

    static DataSpec? ReadData(Reader r, SpecMap? map, SpecValidationOptions options)
    {
        if (map is null) return null;
        var d = r.Fields(map, "data", ["dataset", "path", "trainLimit", "testExamples"]);
        var dataset = r.Enum(d, "dataset", (string?)null, new() { ["fashion-mnist"] = "fashion-mnist", ["criteo"] = "criteo" });
        if (dataset == "criteo")
        {
            r.Forbid(d, "trainLimit", "a criteo job trains on the whole file after its test examples");
            var file = r.String(d, "path", null, required: true);
            var test = (int)r.Integer(d, "testExamples", 10_000, 1, 100_000_000);
            if (file is not null && options.CheckFiles && !File.Exists(file))
                r.Error("data.path", $"'{file}' does not exist; point it at a Criteo-format TSV file (plain or .gz), or write one with 'orch data criteo-synth --out FILE'");
            return file is null ? null : new DataSpec("criteo", file, 0, test);
        }
        r.Forbid(d, "testExamples", "only criteo data holds out test examples; fashion-mnist has its own test set");
        var path = r.String(d, "path", FashionMnistFiles.DefaultPath) ?? FashionMnistFiles.DefaultPath;
        var limit = (int)r.Integer(d, "trainLimit", 0, 0, FashionMnistFiles.TrainCount);
        if (dataset is null) return null;
        if (options.CheckFiles)
        {
            var missing = FashionMnistFiles.All.Where(f => !File.Exists(System.IO.Path.Combine(path, f))).ToList();
            if (missing.Count > 0)
            {
                r.Error("data.path", Directory.Exists(path)
                    ? $"'{path}' lacks {string.Join(", ", missing)}; point data.path at a folder with the Fashion-MNIST IDX .gz files"
                    : $"'{path}' does not exist; install Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or point data.path at the IDX .gz files");
            }
        }
        return new DataSpec(dataset, path, limit);
    }

    static EmbeddingSpec ReadEmbedding(Reader r, SpecMap? map)
    {
        var e = r.Fields(map, "embedding", ["shards", "lr", "faultTolerance"]);
        var shards = (int)r.Integer(e, "shards", 0, 1, 4096);
        var lr = r.Number(e, "lr", 0.05, 0, 10, minExclusive: true);
        FaultTolerance tolerance = new(FaultToleranceMode.ErasureCoding, 0, 1, 0);
        switch (e?.Get("faultTolerance"))
        {
            case null or SpecScalar { IsNull: true }:
                break;
            case SpecScalar { Text: "none" }:
                tolerance = new FaultTolerance(FaultToleranceMode.None, 0, 0, 0);
                break;
            case SpecMap:
                var f = r.Fields(r.Section(e, "faultTolerance", required: false), "embedding.faultTolerance", ["k", "r", "checkpoint"]);
                if (f?.Get("checkpoint") is not null)
                {
                    foreach (var x in new[] { "k", "r" }) r.Forbid(f, x, "checkpointing and erasure coding are alternatives: give checkpoint, or k and r");
                    tolerance = new FaultTolerance(FaultToleranceMode.Checkpoint, 0, 0, (int)r.Integer(f, "checkpoint", 100, 1, 100_000_000));
                }
                else
                {
                    var k = (int)r.Integer(f, "k", 0, 1, 64);
                    tolerance = new FaultTolerance(FaultToleranceMode.ErasureCoding, k, (int)r.Integer(f, "r", 1, 1, 8), 0);
                }
                break;
            default:
                r.Error("embedding.faultTolerance", "must be none, {k: K, r: R} (erasure coding; k omitted: chosen from the live silos) or {checkpoint: STEPS}");
                break;
        }
        if (tolerance is { Mode: FaultToleranceMode.ErasureCoding, K: > 0 } && shards > 0 && shards % tolerance.K != 0)
            r.Error("embedding.shards", $"must be a multiple of embedding.faultTolerance.k ({tolerance.K}): shards form coding groups of k, got {shards}");
        return new EmbeddingSpec(shards, lr, tolerance);
    }

    static TrainSpec? ReadTrain(Reader r, SpecMap? map)
    {
        var t = r.Fields(map, "train", ["epochs", "steps", "batchSize", "optimizer", "lr", "momentum", "weightDecay", "beta1", "beta2", "eps", "seed", "checkpointEvery"]);
        var hasEpochs = t?.Get("epochs") is not null;
        var hasSteps = t?.Get("steps") is not null;
        if (hasEpochs && hasSteps) r.Error("train.steps", "give either train.epochs or train.steps, not both");
        var epochs = (int)r.Integer(t, "epochs", 1, 1, 10_000);
        var steps = r.Integer(t, "steps", 0, 1, 1_000_000_000);
        var batch = (int)r.Integer(t, "batchSize", 64, 1, 8192);
        var optimizer = r.Enum(t, "optimizer", OptimizerKind.Sgd, new() { ["sgd"] = OptimizerKind.Sgd, ["adam"] = OptimizerKind.Adam });
        var lr = r.Number(t, "lr", optimizer == OptimizerKind.Adam ? 1e-3 : 0.05, 0, 10, minExclusive: true);
        var momentum = r.Number(t, "momentum", optimizer == OptimizerKind.Sgd ? 0.9 : 0, 0, 1, maxExclusive: true);
        if (optimizer == OptimizerKind.Adam) r.Forbid(t, "momentum", "adam has no momentum; set beta1/beta2 instead");
        if (optimizer == OptimizerKind.Sgd)
        {
            foreach (var f in new[] { "beta1", "beta2", "eps" }) r.Forbid(t, f, "only adam uses beta1, beta2 and eps");
        }
        var wd = r.Number(t, "weightDecay", 0, 0, 1, maxExclusive: true);
        var beta1 = r.Number(t, "beta1", 0.9, 0, 1, maxExclusive: true);
        var beta2 = r.Number(t, "beta2", 0.999, 0, 1, maxExclusive: true);
        var eps = r.Number(t, "eps", 1e-8, 0, 1, minExclusive: true);
        var seed = (int)r.Integer(t, "seed", 1, 0, int.MaxValue);
        var checkpointEvery = (int)r.Integer(t, "checkpointEvery", 500, 1, 10_000_000);
        return new TrainSpec(hasSteps ? 0 : epochs, hasSteps ? steps : 0, batch, optimizer, lr, momentum, wd, beta1, beta2, eps, seed, checkpointEvery);
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}$")]
    private static partial Regex NamePattern();

    /// <summary>Typed field access that records errors instead of throwing, and reports unknown fields.</summary>
    sealed class Reader
    {
        public List<SpecError> Errors { get; } = [];
        readonly Dictionary<SpecMap, string> _paths = new(ReferenceEqualityComparer.Instance);

        public void Error(string field, string message)
        {
            if (!Errors.Any(e => e.Field == field)) Errors.Add(new SpecError(field, message));
        }

        string PathOf(SpecMap? map, string key)
        {
            var prefix = map is not null && _paths.TryGetValue(map, out var p) ? p : "";
            return prefix.Length == 0 ? key : $"{prefix}.{key}";
        }

        /// <summary>Registers a map's path and reports keys outside <paramref name="known"/>.</summary>
        public SpecMap? Fields(SpecMap? map, string path, string[] known)
        {
            if (map is null) return null;
            _paths[map] = path;
            foreach (var (key, _) in map.Entries)
            {
                if (known.Contains(key)) continue;
                var close = known.FirstOrDefault(k => Similar(k, key));
                var hint = close is not null ? $"; did you mean '{close}'?" : $"; known fields: {string.Join(", ", known)}";
                // A blank key (": 1") would otherwise be reported under an empty name.
                Error(PathOf(map, string.IsNullOrWhiteSpace(key) ? "(blank key)" : key), $"unknown field{hint}");
            }
            return map;
        }

        /// <summary>A likely misspelling: same letters ignoring case and separators, a prefix, or at most two edits apart.</summary>
        static bool Similar(string known, string given)
        {
            static string Plain(string x) => x.Replace("-", "").Replace("_", "").ToLowerInvariant();
            var (k, g) = (Plain(known), Plain(given));
            if (k == g) return true;
            if (Math.Min(k.Length, g.Length) >= 2 && (k.StartsWith(g) || g.StartsWith(k))) return true;
            return Math.Abs(k.Length - g.Length) <= 2 && EditDistance(k, g) <= 2;
        }

        static int EditDistance(string a, string b)
        {
            var row = Enumerable.Range(0, b.Length + 1).ToArray();
            for (int i = 1; i <= a.Length; i++)
            {
                var diagonal = row[0];
                row[0] = i;
                for (int j = 1; j <= b.Length; j++)
                {
                    var above = row[j];
                    row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                    diagonal = above;
                }
            }
            return row[b.Length];
        }

        public SpecMap? Section(SpecMap? parent, string key, bool required)
        {
            var node = parent?.Get(key);
            var path = PathOf(parent, key);
            if (node is null || node is SpecScalar { IsNull: true })
            {
                if (required) Error(path, "required section is missing");
                return null;
            }
            if (node is SpecMap m) { _paths[m] = path; return m; }
            Error(path, $"must be a map of fields, got {SpecDocument.Describe(node)}");
            return null;
        }

        SpecScalar? Scalar(SpecMap? map, string key, bool required)
        {
            var node = map?.Get(key);
            if (node is null || node is SpecScalar { IsNull: true })
            {
                if (required) Error(PathOf(map, key), "required field is missing");
                return null;
            }
            if (node is SpecScalar s) return s;
            Error(PathOf(map, key), $"must be a single value, got {SpecDocument.Describe(node)}");
            return null;
        }

        public void Forbid(SpecMap? map, string key, string why)
        {
            if (map?.Get(key) is not null) Error(PathOf(map, key), $"not allowed here: {why}");
        }

        public string? String(SpecMap? map, string key, string? fallback, bool required = false)
        {
            var s = Scalar(map, key, required);
            if (s is null) return fallback;
            if (s.Text is { Length: > 4096 }) { Error(PathOf(map, key), "is longer than 4096 characters"); return fallback; }
            if (s.Text is { } text && Unprintable(text) is { } at)
            {
                // Strings end up in pages, logs and metric labels, where these would hide or reorder text.
                Error(PathOf(map, key), $"contains an invisible or control character (U+{(int)text[at]:X4}) at position {at + 1}; write it in plain characters");
                return fallback;
            }
            return s.Text;
        }

        public T Enum<T>(SpecMap? map, string key, T fallback, Dictionary<string, T> values, Dictionary<string, string>? unsupported = null)
        {
            var s = Scalar(map, key, required: fallback is null);
            if (s is null) return fallback;
            var text = s.Text ?? "";
            if (values.TryGetValue(text.ToLowerInvariant(), out var v)) return v;
            if (unsupported is not null && unsupported.TryGetValue(text.ToLowerInvariant(), out var why))
                Error(PathOf(map, key), why);
            else
                Error(PathOf(map, key), $"must be one of {string.Join(", ", values.Keys)}, got '{SpecDocument.Truncate(text)}'");
            return fallback;
        }

        public long Integer(SpecMap? map, string key, long fallback, long min, long max)
        {
            var s = Scalar(map, key, required: false);
            if (s is null) return fallback;
            if (s.Quoted || !long.TryParse(s.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
            {
                var hint = SpecDocument.TryDouble(s.Text, out _) && !s.Quoted ? "a whole number" : "an integer";
                Error(PathOf(map, key), $"must be {hint}, got {SpecDocument.Describe(s)}");
                return fallback;
            }
            if (v < min || v > max) { Error(PathOf(map, key), $"must be between {min} and {max}, got {v}"); return fallback; }
            return v;
        }

        public double Number(SpecMap? map, string key, double fallback, double min, double max, bool minExclusive = false, bool maxExclusive = false)
        {
            var s = Scalar(map, key, required: false);
            if (s is null) return fallback;
            if (s.Quoted || !SpecDocument.TryDouble(s.Text, out var v) || !double.IsFinite(v))
            {
                Error(PathOf(map, key), $"must be a finite number, got {SpecDocument.Describe(s)}");
                return fallback;
            }
            bool below = minExclusive ? v <= min : v < min, above = maxExclusive ? v >= max : v > max;
            if (below || above)
            {
                var range = $"{(minExclusive ? "(" : "[")}{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}{(maxExclusive ? ")" : "]")}";
                Error(PathOf(map, key), $"must be in {range}, got {v.ToString(CultureInfo.InvariantCulture)}");
                return fallback;
            }
            return v;
        }

        public IReadOnlyList<int>? IntList(SpecMap? map, string key, int[] fallback, int minCount, int maxCount, int min, int max)
        {
            var node = map?.Get(key);
            var path = PathOf(map, key);
            if (node is null || node is SpecScalar { IsNull: true }) return fallback;
            if (node is not SpecList list) { Error(path, $"must be a list of integers like [256, 128], got {SpecDocument.Describe(node)}"); return null; }
            if (list.Items.Count < minCount || list.Items.Count > maxCount)
            {
                Error(path, minCount == maxCount ? $"must have exactly {minCount} entries, got {list.Items.Count}" : $"must have {minCount} to {maxCount} entries, got {list.Items.Count}");
                return null;
            }
            var result = new List<int>();
            for (int i = 0; i < list.Items.Count; i++)
            {
                if (list.Items[i] is not SpecScalar s || s.Quoted || !int.TryParse(s.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v))
                {
                    Error($"{path}[{i}]", $"must be an integer, got {SpecDocument.Describe(list.Items[i])}");
                    return null;
                }
                if (v < min || v > max) { Error($"{path}[{i}]", $"must be between {min} and {max}, got {v}"); return null; }
                result.Add(v);
            }
            return result;
        }
    }
}
