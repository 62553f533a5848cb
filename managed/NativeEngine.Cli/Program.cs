using NativeEngine.Cli;

return CliApp.Run(args);
