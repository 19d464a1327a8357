using System.CommandLine;
using System.Globalization;
using Orchestrator.Core.Reliability;
using Spectre.Console;

namespace Orchestrator.Cli;

/// <summary>
/// orch reliability: the Meta study's model projected from 8 to 100,000 devices, for checkpoint-restart at its
/// Daly-optimal interval and for erasure-coded recovery (no lost work; each failure costs the rebuild).
/// </summary>
public static class ReliabilityCommand
{
    static readonly int[] DefaultDevices = [8, 64, 512, 4096, 16_384, 100_000];

    public static Command Create(Func<Func<Task<int>>, Task<int>> run)
    {
        var devices = new Option<int[]>("--devices") { Description = "Device counts (8 per node), repeatable; default 8 to 100,000", AllowMultipleArgumentsPerToken = true };
        var rate = new Option<double[]>("--rate") { Description = "Failures per 1,000 node-days; default the study's two clusters, 6.50 and 2.34", AllowMultipleArgumentsPerToken = true };
        var write = new Option<double>("--checkpoint-write") { Description = "Seconds to write one checkpoint (default: 2.1, measured by 'orch bench ecrm' for 166 MB of embedding tables)", DefaultValueFactory = _ => 2.1 };
        var restart = new Option<double>("--restart") { Description = "Seconds from a failure to training again after a checkpoint restore (default: 7.9, measured by 'orch bench ecrm')", DefaultValueFactory = _ => 7.9 };
        var rebuild = new Option<double>("--rebuild") { Description = "Seconds from a failure to training again after an erasure-coded rebuild (default: 3.9, measured by 'orch bench ecrm')", DefaultValueFactory = _ => 3.9 };
        var command = new Command("reliability", "Job MTTF and expected ETTR from 8 to 100,000 devices (the Meta study's model), for checkpoint-restart at the Daly-optimal interval and for erasure-coded recovery")
        {
            devices, rate, write, restart, rebuild,
        };
        command.SetAction((p, _) => run(() =>
        {
            var counts = p.GetValue(devices) is { Length: > 0 } d ? d : DefaultDevices;
            var rates = p.GetValue(rate) is { Length: > 0 } r ? r : [ReliabilityModel.Rsc1PerThousandNodeDays, ReliabilityModel.Rsc2PerThousandNodeDays];
            if (counts.Any(c => c is < 1 or > 10_000_000)) throw new UsageException("--devices: give counts from 1 to 10,000,000");
            if (rates.Any(x => x is <= 0 or > 10_000)) throw new UsageException("--rate: give failures per 1,000 node-days, above 0");
            var (w, u0, rb) = (Seconds(p.GetValue(write), "--checkpoint-write"), Seconds(p.GetValue(restart), "--restart"), Seconds(p.GetValue(rebuild), "--rebuild"));
            foreach (var perThousand in rates)
            {
                var perNodeDay = perThousand / 1000;
                var table = new Table().AddColumns("devices", "nodes", "job MTTF", "checkpoint interval (Daly)", "E[[ETTR]] checkpoint-restart", "E[[ETTR]] erasure-coded", "lost time, checkpoint / erasure-coded");
                foreach (var count in counts)
                {
                    var nodes = Math.Max(1.0, Math.Ceiling(count / (double)ReliabilityModel.GpusPerNode));
                    var mttf = ReliabilityModel.JobMttf(nodes, perNodeDay);
                    var interval = ReliabilityModel.DalyInterval(w, mttf);
                    var checkpointed = ReliabilityModel.ExpectedEttr(nodes, perNodeDay, interval, w, u0);
                    var coded = ReliabilityModel.ExpectedEttrErasureCoded(nodes, perNodeDay, rb);
                    table.AddRow(count.ToString("N0", CultureInfo.InvariantCulture), nodes.ToString("N0", CultureInfo.InvariantCulture), Duration(mttf), Duration(interval),
                        checkpointed.ToString("F4", CultureInfo.InvariantCulture), coded.ToString("F4", CultureInfo.InvariantCulture),
                        (1 - coded) > 0 ? $"{(1 - checkpointed) / (1 - coded):F1}×" : "–");
                }
                AnsiConsole.MarkupLine($"[bold]{perThousand.ToString(CultureInfo.InvariantCulture)} failures per 1,000 node-days[/]{(perThousand == ReliabilityModel.Rsc1PerThousandNodeDays ? " (the study's RSC-1)" : perThousand == ReliabilityModel.Rsc2PerThousandNodeDays ? " (the study's RSC-2)" : "")}; checkpoint write {w.TotalSeconds:0.#} s, restart {u0.TotalSeconds:0.#} s, erasure-coded rebuild {rb.TotalSeconds:0.#} s");
                AnsiConsole.Write(table);
            }
            AnsiConsole.MarkupLine("E[[ETTR]] ≈ [[1 − N·r_f·(u0 + Δt/2)]] / (1 + w/Δt); erasure-coded: 1 − N·r_f·rebuild (no rollback, no periodic write). The study: 0.93 and 0.70 for a 16k-GPU job at 5- and 60-minute intervals with u0 = 5 min.");
            return Task.FromResult(0);
        }));
        return command;
    }

    static TimeSpan Seconds(double value, string option) =>
        value is >= 0 and <= 1e6 ? TimeSpan.FromSeconds(value) : throw new UsageException($"{option} {value}: give seconds from 0 to 1,000,000");

    static string Duration(TimeSpan t) => t.TotalDays >= 2 ? $"{t.TotalDays:F1} d" : t.TotalHours >= 2 ? $"{t.TotalHours:F1} h" : t.TotalMinutes >= 2 ? $"{t.TotalMinutes:F1} min" : $"{t.TotalSeconds:F0} s";
}
