// An app written against Microsoft.Extensions.AI's IChatClient. Only ServeSampleApp.CreateClient knows the model is a
// local fine-tuned one; the conversation code (Chat) is what the app would run against a hosted model.
//
//   dotnet run --project samples/ServeSample -- MODEL_DIR [ADAPTER_DIR] [--chat-template FILE] [--prompt TEXT]
//                                               [--max-tokens N] [--device auto|cpu|cuda]
//
// See README.md beside this file.
return await ServeSample.ServeSampleApp.RunAsync(args, Console.In, Console.Out, Console.Error);
