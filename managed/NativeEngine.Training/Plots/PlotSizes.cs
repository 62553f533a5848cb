namespace NativeEngine.Training;

/// <summary>Checks of image sizes shared by the plots.</summary>
internal static class PlotSizes
{
    internal const int Min = 100;
    internal const int Max = 8000;

    internal static void Check(int width, int height)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, Min);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(width, Max);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, Min);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(height, Max);
    }
}
