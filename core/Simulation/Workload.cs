using System.Globalization;

namespace Orchestrator.Core.Simulation;

public enum SimJobKind { Small, Large }

/// <summary>
/// One job of a workload: when it arrives, how many devices it needs, how long it trains alone on them (seconds),
/// and the key it fuses with (small jobs of one sweep; null: never fused).
/// </summary>
public sealed record SimJob(int Id, double SubmitSeconds, int Devices, double DurationSeconds, SimJobKind Kind, string? FusionKey);

/// <summary>
/// The Meta study's workload shape: most jobs are small (one device, minutes to hours, often sweeps of one
/// architecture that can be fused), a few large data-parallel jobs (hundreds to thousands of devices, hours to days)
/// take most of the device-time. Arrivals are Poisson; durations log-normal around their medians.
/// </summary>
public sealed record WorkloadModel(
    double JobsPerHour = 500,
    double SmallFraction = 0.97,
    double SmallMedianMinutes = 40,
    double LargeMedianHours = 8,
    int SweepSize = 8,
    int[]? LargeSizes = null,
    double[]? LargeWeights = null)
{
    /// <summary>For scenario files: every field at its default.</summary>
    public WorkloadModel() : this(500) { }

    public IReadOnlyList<int> Sizes => LargeSizes ?? [64, 256, 1024];
    public IReadOnlyList<double> Weights => LargeWeights ?? [0.6, 0.3, 0.1];

    public IReadOnlyList<SimJob> Generate(Random random, double seconds, int largestJob)
    {
        var jobs = new List<SimJob>();
        var t = 0.0;
        var perSecond = JobsPerHour / 3600;
        var sweep = 0;
        while (true)
        {
            t += -Math.Log(1 - random.NextDouble()) / perSecond;
            if (t >= seconds) break;
            if (random.NextDouble() < SmallFraction)
            {
                // A sweep: SweepSize small jobs of one architecture arrive together and may fuse.
                var key = $"sweep-{sweep++}";
                var minutes = LogNormal(random, SmallMedianMinutes, 0.8);
                for (int i = 0; i < SweepSize && jobs.Count < int.MaxValue; i++)
                    jobs.Add(new SimJob(jobs.Count, t, 1, minutes * 60 * (0.9 + 0.2 * random.NextDouble()), SimJobKind.Small, key));
            }
            else
            {
                var size = Pick(random, Sizes, Weights);
                jobs.Add(new SimJob(jobs.Count, t, Math.Min(size, largestJob), LogNormal(random, LargeMedianHours, 0.7) * 3600, SimJobKind.Large, null));
            }
        }
        return jobs;
    }

    static double LogNormal(Random random, double median, double sigma)
    {
        // Box-Muller: one standard normal from two uniforms.
        var z = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        return median * Math.Exp(sigma * z);
    }

    static int Pick(Random random, IReadOnlyList<int> values, IReadOnlyList<double> weights)
    {
        var u = random.NextDouble() * weights.Sum();
        for (int i = 0; i < values.Count; i++)
            if ((u -= weights[i]) <= 0) return values[i];
        return values[^1];
    }
}

/// <summary>A workload as CSV, to replay a real cluster's trace: submit_seconds,devices,duration_seconds,kind,fusion_key.</summary>
public static class WorkloadTrace
{
    public const string Header = "submit_seconds,devices,duration_seconds,kind,fusion_key";

    public static void Write(TextWriter writer, IEnumerable<SimJob> jobs)
    {
        writer.WriteLine(Header);
        foreach (var j in jobs)
            writer.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{j.SubmitSeconds:R},{j.Devices},{j.DurationSeconds:R},{j.Kind.ToString().ToLowerInvariant()},{j.FusionKey}"));
    }

    /// <summary>Reads a trace; a bad line is an error naming its line number and field.</summary>
    public static IReadOnlyList<SimJob> Read(TextReader reader, string name)
    {
        var jobs = new List<SimJob>();
        var header = reader.ReadLine();
        if (header?.Trim() != Header) throw new FormatException($"{name}: the first line must be '{Header}'");
        string? line;
        for (int n = 2; (line = reader.ReadLine()) is not null; n++)
        {
            if (line.Trim().Length == 0) continue;
            var f = line.Split(',');
            if (f.Length != 5) throw new FormatException($"{name} line {n}: expected 5 fields ({Header}), found {f.Length}");
            double Number(int i, string field) => double.TryParse(f[i], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= 0 && double.IsFinite(v)
                ? v : throw new FormatException($"{name} line {n}: {field} '{f[i]}' is not a non-negative number");
            var devices = int.TryParse(f[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var d) && d >= 1
                ? d : throw new FormatException($"{name} line {n}: devices '{f[1]}' is not a whole number of at least 1");
            var kind = f[3].Trim().ToLowerInvariant() switch
            {
                "small" => SimJobKind.Small,
                "large" => SimJobKind.Large,
                _ => throw new FormatException($"{name} line {n}: kind '{f[3]}' is not small or large"),
            };
            jobs.Add(new SimJob(jobs.Count, Number(0, "submit_seconds"), devices, Number(2, "duration_seconds"), kind, f[4].Trim().Length > 0 ? f[4].Trim() : null));
        }
        return jobs.OrderBy(j => j.SubmitSeconds).Select((j, i) => j with { Id = i }).ToList();
    }
}
