using System.Text.RegularExpressions;

namespace Orchestrator.Core.Specs;

/// <summary>
/// Applies command-line overrides to a spec: <c>--set train.lr=0.1</c> changes one field; each
/// <c>--sweep train.lr=0.01,0.1</c> multiplies the jobs (the cartesian product over all sweeps), each job named
/// after its values.
/// </summary>
public static partial class SpecVariants
{
    public sealed record Variant(string NameSuffix, SpecNode Spec);

    public static IReadOnlyList<Variant> Expand(SpecNode root, IEnumerable<string> sets, IEnumerable<string> sweeps)
    {
        foreach (var set in sets)
        {
            var (path, value) = Split(set, "--set");
            root = SpecDocument.SetPath(root, path, value);
        }
        var variants = new List<Variant> { new("", root) };
        foreach (var sweep in sweeps)
        {
            var (path, list) = Split(sweep, "--sweep");
            var values = list.Split(',', StringSplitOptions.TrimEntries);
            if (values.Length < 2 || values.Any(v => v.Length == 0))
                throw new SpecFormatException($"--sweep {sweep}: give two or more comma-separated values, like {path}=0.01,0.1");
            if (values.Distinct().Count() != values.Length) throw new SpecFormatException($"--sweep {sweep}: a value is repeated");
            variants = variants.SelectMany(v => values.Select(value =>
                new Variant(v.NameSuffix + "-" + Slug(value), SpecDocument.SetPath(v.Spec, path, value)))).ToList();
        }
        if (variants.Count > 1000) throw new SpecFormatException($"the sweeps make {variants.Count} jobs; at most 1000 per submit");
        return variants;
    }

    static (string Path, string Value) Split(string assignment, string flag)
    {
        var eq = assignment.IndexOf('=');
        if (eq <= 0) throw new SpecFormatException($"{flag} '{assignment}' is not KEY=VALUE (for example train.lr=0.1)");
        return (assignment[..eq].Trim(), assignment[(eq + 1)..].Trim());
    }

    /// <summary>A value as it may appear in a job name: 0.01 → 0-01, 1e-3 → 1e-3.</summary>
    public static string Slug(string value) => NotNameChar().Replace(value.ToLowerInvariant(), "-").Trim('-');

    /// <summary>Sets the spec's name to its base name plus a variant suffix, within the 63-character limit.</summary>
    public static SpecNode WithNameSuffix(SpecNode spec, string suffix)
    {
        if (suffix.Length == 0 || spec is not SpecMap map || map.Get("name") is not SpecScalar { Text: { } name }) return spec;
        var full = name + suffix;
        if (full.Length > 63) full = name[..Math.Max(1, 63 - suffix.Length)] + suffix;
        return map.With("name", new SpecScalar(full[..Math.Min(63, full.Length)], Quoted: true));
    }

    [GeneratedRegex("[^a-z0-9]+")]
    private static partial Regex NotNameChar();
}
