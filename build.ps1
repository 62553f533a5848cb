<#
.SYNOPSIS
    NativeEngine build driver for PowerShell users: the same steps as build.sh.

.DESCRIPTION
    test       build everything and run every test (GoogleTest, then xunit)
    sanitize   the GoogleTest suite under AddressSanitizer + UndefinedBehaviorSanitizer
    native     configure and build the native library, tests and benchmarks (release)
    bench      run the native benchmarks (Google Benchmark); extra args go to the binary
    bindings   regenerate bindings/generated/NativeMethods.g.cs from the C header
    pack       dotnet pack the NativeEngine package into artifacts/
    run        run the CLI (managed/NativeEngine.Cli) with the given arguments

    Set $env:NE_STRICT = "1" to treat compiler warnings as errors.

.EXAMPLE
    ./build.ps1 test
#>
param(
    [Parameter(Position = 0)]
    [ValidateSet('test', 'sanitize', 'native', 'bench', 'bindings', 'pack', 'run')]
    [string] $Command = 'test',

    [Parameter(Position = 1, ValueFromRemainingArguments = $true)]
    [string[]] $Arguments = @()
)

$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
$root = $PSScriptRoot
$strict = $env:NE_STRICT -eq '1'

function Invoke-Step([string] $Title, [scriptblock] $Body) {
    Write-Host "`n==> $Title"
    & $Body
    if ($LASTEXITCODE -ne 0) { throw "$Title failed with exit code $LASTEXITCODE" }
}

function Build-Native([string] $Preset) {
    $cmakeArgs = @('--preset', $Preset)
    if ($strict) { $cmakeArgs += '-DNE_WARNINGS_AS_ERRORS=ON' }
    Invoke-Step "native: configure ($Preset)" { cmake @cmakeArgs | Out-Null }
    Invoke-Step "native: build ($Preset)" { cmake --build --preset $Preset }
}

function Test-Native([string] $Preset) {
    Invoke-Step "native: GoogleTest ($Preset)" { ctest --preset $Preset }
}

$dotnetStrict = @()
if ($strict) { $dotnetStrict += '-warnaserror' }

switch ($Command) {
    'native' { Build-Native 'release' }
    'test' {
        Build-Native 'release'
        Test-Native 'release'
        Invoke-Step 'managed: build' { dotnet build NativeEngine.sln -c Release -p:NativeEngineSkipNativeBuild=true @dotnetStrict }
        Invoke-Step 'managed: xunit' { dotnet test NativeEngine.sln -c Release --no-build }
        Write-Host "`n==> all tests passed"
    }
    'sanitize' {
        Build-Native 'sanitize'
        Test-Native 'sanitize'
    }
    'bench' {
        Build-Native 'release'
        Invoke-Step 'native: benchmarks' { & (Join-Path $root 'build/release/native/bench/nativeengine_bench') @Arguments }
    }
    'bindings' {
        Invoke-Step 'bindings: regenerate' { dotnet run --project bindings/NativeEngine.BindingGen -c Release -- --root $root }
    }
    'pack' {
        Build-Native 'release'
        Invoke-Step 'managed: pack into artifacts/' {
            dotnet pack managed/NativeEngine -c Release -p:NativeEngineSkipNativeBuild=true -o (Join-Path $root 'artifacts')
        }
    }
    'run' {
        Invoke-Step 'cli' { dotnet run --project managed/NativeEngine.Cli -c Release -- @Arguments }
    }
}
