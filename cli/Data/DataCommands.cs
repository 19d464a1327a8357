namespace Orchestrator.Cli.Data;

/// <summary>orch data: data sets to train on that no Debian package ships.</summary>
public static class DataCommands
{
    public static Command Create()
    {
        var output = new Option<FileInfo>("--out", "-o") { Description = "File to write (gzip when it ends in .gz)", Required = true };
        var rows = new Option<int>("--rows") { Description = "Examples to write", DefaultValueFactory = _ => 100_000 };
        var seed = new Option<int>("--seed") { Description = "Seed of the hidden teacher model and of the examples (the same seed writes the same file)", DefaultValueFactory = _ => 1 };
        var criteoSynth = new Command("criteo-synth", "Write a Criteo-format click log (label, 13 integers, 26 hashed categories, tab-separated) whose labels come from a hidden teacher model, so that a trained recommendation model measurably beats the base rate (about 25% clicks)") { output, rows, seed };
        criteoSynth.SetAction((p, ct) => Cli.Run(async () =>
        {
            var file = p.GetValue(output)!;
            var count = p.GetValue(rows);
            if (count < 1) throw new UsageException($"--rows {count}: give at least 1");
            if (file.Directory is { Exists: false } dir) throw new UsageException($"--out: folder '{dir.FullName}' does not exist");
            await AnsiConsole.Progress().StartAsync(async progress =>
            {
                var task = progress.AddTask(Markup.Escape(file.Name), maxValue: count);
                await Task.Run(() => Orchestrator.Core.Recommendation.CriteoSynth.Write(file.FullName, count, p.GetValue(seed), new Progress<int>(n => task.Value = n)), ct);
            });
            AnsiConsole.MarkupLine($"wrote {count:N0} examples to {Markup.Escape(file.FullName)} ({file.Length / 1e6:F1} MB)");
            return 0;
        }));
        return new Command("data", "Generate data sets") { criteoSynth };
    }
}
