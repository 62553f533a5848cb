namespace NativeEngine.Cli.Demo;

/// <summary>One row of the demo table: a kernel run on random data and compared with the scalar reference.</summary>
internal sealed record CheckResult(string Kernel, string Shape, double MaxError, double Tolerance, double Milliseconds, string? Failure = null)
{
    public bool Passed => Failure is null && MaxError <= Tolerance;
}
