using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>A real child process (silo, worker, CLI, redis-server) whose output is kept for assertions and failures.</summary>
public sealed class ChildProcess : IDisposable
{
    readonly Process _process;
    readonly ConcurrentQueue<string> _lines = new();

    public string Name { get; }

    ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) _lines.Enqueue(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public static ChildProcess Start(string name, string fileName, params string[] args)
    {
        var info = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment["DOTNET_gcServer"] = "0";
        info.Environment.Remove("ORCH_REDIS");
        info.Environment.Remove("ORCH_GATEWAY");
        return new ChildProcess(name, Process.Start(info) ?? throw new InvalidOperationException($"could not start {fileName}"));
    }

    public static ChildProcess Dotnet(string name, string dll, params string[] args) => Start(name, "dotnet", [dll, .. args]);

    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string Output => string.Join('\n', _lines);

    public async Task WaitForLine(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (_lines.Any(match)) return;
            if (_process.HasExited) throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} before the expected output:\n{Output}");
            await Task.Delay(100);
        }
        throw new TimeoutException($"{Name}: expected output did not appear within {timeout}:\n{Output}");
    }

    public async Task<int> WaitForExit(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"{Name} did not exit within {timeout}:\n{Output}"); }
        _process.WaitForExit(); // flush redirected output
        return _process.ExitCode;
    }

    /// <summary>SIGKILL: no graceful shutdown, as a crash.</summary>
    public void Kill()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit(5000);
    }

    /// <summary>SIGSTOP / SIGCONT: the process freezes (as a hung worker) and later thaws.</summary>
    public void Freeze() => Signal("STOP");
    public void Thaw() => Signal("CONT");

    void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-" + signal, _process.Id.ToString()]);
        kill.WaitForExit();
        if (kill.ExitCode != 0) throw new InvalidOperationException($"kill -{signal} {_process.Id} failed");
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) Thaw(); } catch (Exception) { }
        try { Kill(); } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
