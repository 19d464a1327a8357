using Orchestrator.Core.Data;
using System.Globalization;
using System.IO.Compression;

namespace Orchestrator.Core.Recommendation;

/// <summary>One click-log example: the label, the 13 dense features after log(1 + x), and the 26 categories
/// hashed into their tables' rows.</summary>
public sealed record CriteoExample(float Label, float[] Dense, int[] Categories);

/// <summary>
/// Criteo's click-log format: one example per line, tab-separated: label (0/1), 13 integer features, 26
/// categorical features (hashed strings, usually 8 hex digits). Any feature may be empty (missing). Files may be
/// plain or gzip (.gz). Dense values are transformed with log(1 + max(x, 0)), missing as 0; a category is hashed
/// with its table index into the table's row count, a missing one into a row of its own hash.
/// </summary>
public static class CriteoFormat
{
    public const int DenseFeatures = 13, CategoricalFeatures = 26, Columns = 1 + DenseFeatures + CategoricalFeatures;
    /// <summary>A Criteo line is a few hundred characters; one far longer means the file is something else.</summary>
    public const int MaxLineChars = 16 * 1024;

    /// <summary>Streams the examples of a file; a malformed line fails with its line number and what is wrong.</summary>
    public static IEnumerable<CriteoExample> Read(string path, IReadOnlyList<int> tableRows)
    {
        if (tableRows.Count != CategoricalFeatures) throw new ArgumentException($"need {CategoricalFeatures} table sizes, got {tableRows.Count}");
        using var reader = OpenText(path);
        while (reader.ReadLine() is { } line)
        {
            if (line.Length == 0) continue;
            yield return Parse(line, tableRows, path, reader.LineNumber);
        }
    }

    /// <summary>A file's lines, decompressed when its name ends in .gz, none longer than <see cref="MaxLineChars"/>.</summary>
    public static BoundedLineReader OpenText(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path} is missing on this node; copy the data there or fix data.path", path);
        Stream file = File.OpenRead(path);
        return new BoundedLineReader(new StreamReader(path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file), MaxLineChars, path);
    }

    /// <summary>The number of examples (non-empty lines) in a file, without parsing them.</summary>
    public static long Count(string path)
    {
        using var reader = OpenText(path);
        long lines = 0;
        while (reader.ReadLine() is { } line) if (line.Length > 0) lines++;
        return lines;
    }

    public static CriteoExample Parse(string line, IReadOnlyList<int> tableRows, string source = "input", long lineNumber = 1)
    {
        var fields = line.Split('\t');
        if (fields.Length != Columns)
            throw new InvalidDataException($"{source}:{lineNumber}: {fields.Length} tab-separated fields, a Criteo line has {Columns} (label, 13 integers, 26 categories)");
        float label = fields[0] switch
        {
            "0" => 0f,
            "1" => 1f,
            _ => throw new InvalidDataException($"{source}:{lineNumber}: label '{fields[0]}' must be 0 or 1"),
        };
        var dense = new float[DenseFeatures];
        for (int i = 0; i < DenseFeatures; i++)
        {
            var text = fields[1 + i];
            if (text.Length == 0) continue;
            if (!long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
                throw new InvalidDataException($"{source}:{lineNumber}: integer feature {i + 1} is '{text}', not an integer");
            dense[i] = MathF.Log(1 + Math.Max(value, 0));
        }
        var categories = new int[CategoricalFeatures];
        for (int t = 0; t < CategoricalFeatures; t++) categories[t] = HashCategory(t, fields[1 + DenseFeatures + t], tableRows[t]);
        return new CriteoExample(label, dense, categories);
    }

    /// <summary>FNV-1a of (table, value) modulo the table's rows: stable across processes and machines.</summary>
    public static int HashCategory(int table, ReadOnlySpan<char> value, int rows)
    {
        var hash = 14695981039346656037UL ^ (ulong)table;
        hash *= 1099511628211UL;
        foreach (var c in value) hash = (hash ^ c) * 1099511628211UL;
        return (int)(hash % (ulong)rows);
    }
}

/// <summary>
/// Reads a file's examples by position without holding the file in memory: a read at or after the previous one
/// continues the stream (skipping lines unparsed), a read before it reopens the file. Data-parallel ranks read
/// their share of every global batch this way, and a job resumed in the middle of a training epoch seeks to where it stopped. Positions
/// count non-empty lines; a malformed line is counted and skipped (its batch is one example smaller), and reading
/// fails once more than <see cref="MaxBadFraction"/> of the lines read (and at least <see cref="MinBadLines"/>) were bad.
/// </summary>
public sealed class CriteoCursor(string path, IReadOnlyList<int> tableRows) : IDisposable
{
    public const double MaxBadFraction = 0.01;
    public const int MinBadLines = 10;
    readonly HashSet<long> _bad = [];
    BoundedLineReader? _reader;
    long _position, _line, _parsed;

    /// <summary>Distinct malformed lines met so far, and the first one's problem.</summary>
    public int Skipped => _bad.Count;
    public string? FirstProblem { get; private set; }

    /// <summary>Examples [<paramref name="start"/>, start + count) of the file (fewer at its end or for bad lines).</summary>
    public List<CriteoExample> Read(long start, int count)
    {
        if (_reader is null || start < _position)
        {
            _reader?.Dispose();
            _reader = CriteoFormat.OpenText(path);
            (_position, _line) = (0, 0);
        }
        var examples = new List<CriteoExample>(count);
        while (_position < start + count && _reader.ReadLine() is { } line)
        {
            _line = _reader.LineNumber;
            if (line.Length == 0) continue;
            if (_position++ < start) continue;
            try
            {
                examples.Add(CriteoFormat.Parse(line, tableRows, path, _line));
                _parsed++;
            }
            catch (InvalidDataException e)
            {
                FirstProblem ??= e.Message;
                _bad.Add(_line);
                if (_bad.Count >= MinBadLines && _bad.Count > MaxBadFraction * (_parsed + _bad.Count))
                    throw new InvalidDataException($"{path}: {_bad.Count} malformed lines among the first {_parsed + _bad.Count} read (more than {MaxBadFraction:P0}); the first: {FirstProblem}. Fix or filter the file");
            }
        }
        return examples;
    }

    public void Dispose() => _reader?.Dispose();
}

/// <summary>
/// Writes Criteo-format files whose labels come from a hidden teacher, so that a model trained on them can
/// measurably beat the base rate: a logistic model over the dense features, one effect per category value, and
/// dot products between the values of a few pairs of tables (what DLRM's interaction layer is for). Category
/// values follow a Zipf law over a per-table vocabulary, as click logs do; about 5% of each feature is missing.
/// </summary>
public sealed class CriteoSynth
{
    const int Vocabulary = 400, InteractionDim = 4;
    static readonly (int A, int B)[] Pairs = [(0, 1), (2, 3), (4, 5), (0, 6)];
    readonly Random _random;
    readonly float[] _denseWeights = new float[CriteoFormat.DenseFeatures];
    readonly float[][] _effects = new float[CriteoFormat.CategoricalFeatures][];
    readonly float[][][] _factors = new float[CriteoFormat.CategoricalFeatures][][];
    readonly double[] _zipf;
    readonly float _bias;

    public CriteoSynth(int seed)
    {
        _random = new Random(seed);
        for (int i = 0; i < _denseWeights.Length; i++) _denseWeights[i] = Gaussian(0.35);
        for (int t = 0; t < CriteoFormat.CategoricalFeatures; t++)
        {
            var scale = t < 8 ? 1.0 : 0.15; // a few informative tables, many weak ones
            _effects[t] = Enumerable.Range(0, Vocabulary).Select(_ => Gaussian(scale)).ToArray();
            _factors[t] = Enumerable.Range(0, Vocabulary).Select(_ => Enumerable.Range(0, InteractionDim).Select(_ => Gaussian(0.7)).ToArray()).ToArray();
        }
        var weights = Enumerable.Range(1, Vocabulary).Select(r => 1.0 / Math.Pow(r, 1.1)).ToArray();
        var total = weights.Sum();
        _zipf = new double[Vocabulary];
        double cumulative = 0;
        for (int v = 0; v < Vocabulary; v++) _zipf[v] = cumulative += weights[v] / total;
        _bias = Calibrate(0.25); // a base rate near 25%, like Criteo's
    }

    /// <summary>The bias that makes the mean click probability <paramref name="rate"/> over a sample of examples.</summary>
    float Calibrate(double rate)
    {
        var logits = Enumerable.Range(0, 4000).Select(_ => Example().Logit).ToArray();
        double low = -20, high = 20;
        for (int i = 0; i < 60; i++)
        {
            var mid = (low + high) / 2;
            if (logits.Average(l => 1 / (1 + Math.Exp(-(l + mid)))) > rate) high = mid;
            else low = mid;
        }
        return (float)low;
    }

    /// <summary>A random example's features and its teacher logit (without the bias).</summary>
    (long[] Counts, int[] Values, double Logit) Example()
    {
        var counts = new long[CriteoFormat.DenseFeatures];
        double logit = 0;
        for (int i = 0; i < counts.Length; i++)
        {
            counts[i] = (long)Math.Floor(-Math.Log(1 - _random.NextDouble()) * (3 + 5 * i));
            logit += _denseWeights[i] * (Math.Log(1 + counts[i]) - 1.5);
        }
        var values = new int[CriteoFormat.CategoricalFeatures];
        for (int t = 0; t < values.Length; t++)
        {
            values[t] = Category();
            logit += _effects[t][values[t]];
        }
        foreach (var (a, b) in Pairs)
            logit += 0.6 * _factors[a][values[a]].Zip(_factors[b][values[b]], (x, y) => x * y).Sum();
        return (counts, values, logit);
    }

    float Gaussian(double sd) => (float)(sd * Math.Sqrt(-2 * Math.Log(1 - _random.NextDouble())) * Math.Cos(2 * Math.PI * _random.NextDouble()));

    int Category()
    {
        var at = Array.BinarySearch(_zipf, _random.NextDouble());
        return Math.Min(Vocabulary - 1, at < 0 ? ~at : at);
    }

    /// <summary>One Criteo-format line.</summary>
    public string NextLine()
    {
        var (counts, values, logit) = Example();
        logit += _bias;
        var label = _random.NextDouble() < 1 / (1 + Math.Exp(-logit)) ? "1" : "0";
        var fields = new List<string>(CriteoFormat.Columns) { label };
        fields.AddRange(counts.Select(c => _random.NextDouble() < 0.05 ? "" : c.ToString(CultureInfo.InvariantCulture)));
        fields.AddRange(values.Select((v, t) => _random.NextDouble() < 0.05 ? "" : ((uint)((t + 1) * 2654435761u ^ (uint)v * 40503u)).ToString("x8")));
        return string.Join('\t', fields);
    }

    /// <summary>Writes <paramref name="examples"/> lines to <paramref name="path"/> (gzip if it ends in .gz).</summary>
    public static void Write(string path, int examples, int seed, IProgress<int>? progress = null)
    {
        var synth = new CriteoSynth(seed);
        using var file = File.Create(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionLevel.Fastest) : file;
        using var writer = new StreamWriter(stream);
        for (int n = 1; n <= examples; n++)
        {
            writer.Write(synth.NextLine());
            writer.Write('\n');
            if (n % 10_000 == 0) progress?.Report(n);
        }
        progress?.Report(examples);
    }
}
