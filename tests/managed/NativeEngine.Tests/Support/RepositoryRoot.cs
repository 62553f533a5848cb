namespace NativeEngine.Tests.Support;

/// <summary>The repository root: the nearest folder above the test binaries that holds NativeEngine.sln.</summary>
internal static class RepositoryRoot
{
    private static readonly Lazy<string> s_path = new(Find);

    public static string Path => s_path.Value;

    private static string Find()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(System.IO.Path.Combine(directory.FullName, "NativeEngine.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException($"No NativeEngine.sln above {AppContext.BaseDirectory}.");
    }
}
