namespace NativeEngine.Cli;

/// <summary>Process exit codes of the command line.</summary>
internal static class ExitCodes
{
    /// <summary>Everything ran and every check passed.</summary>
    public const int Success = 0;

    /// <summary>A kernel check failed (a demo row printed FAIL).</summary>
    public const int CheckFailed = 1;

    /// <summary>The command line was invalid.</summary>
    public const int UsageError = 2;

    /// <summary>The native library could not be loaded or reported an error.</summary>
    public const int NativeError = 3;

    /// <summary>An input file (data, checkpoint) is missing, unreadable or corrupt.</summary>
    public const int InputError = 4;

    /// <summary>The user interrupted the command (Ctrl+C); the last good checkpoint is intact.</summary>
    public const int Canceled = 130;

    /// <summary>An unexpected error (a bug).</summary>
    public const int InternalError = 70;
}
