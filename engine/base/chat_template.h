// The Qwen3-VL Instruct chat template, written out in C++ (no template engine). It renders what
// HF's apply_chat_template(messages, add_generation_prompt=...) renders for messages whose
// content is a list of text and image parts (docs/MODEL.md#chat-template-and-stop-tokens):
//
//   [<|im_start|>system\n{system text}<|im_end|>\n]            only if messages[0] is "system"
//   <|im_start|>user\n{parts}<|im_end|>\n                      an image part is
//   <|im_start|>assistant\n{text}<|im_end|>\n                  [Picture k: ]<|vision_start|>
//   ...                                                            + N x <|image_pad|> + <|vision_end|>
//   [<|im_start|>assistant\n]                                  if add_generation_prompt
//
// There is no default system prompt. N (the number of <|image_pad|> per image) is the caller's:
// grid_t * grid_h * grid_w / merge_size^2 (docs/MODEL.md#image-preprocessing), i.e. the processor's expansion is done here.
// Not supported (pvm::Error): tools / tool messages, videos, a system message anywhere but first,
// images in system or assistant messages.
//
// Token ids come from encoding the rendered text with the Tokenizer, exactly as HF does, so
// special-token text typed inside a message (e.g. "<|im_end|>") becomes that special token too;
// encode_chat refuses text that holds vision tokens (<|vision_start|>, <|image_pad|>), which
// would no longer line up with the images.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/tokenizer.h"

namespace pvm {

struct ChatPart {
  enum class Type { Text, Image };
  Type type = Type::Text;
  std::string text;          // Type::Text
  int64_t image_tokens = 0;  // Type::Image: number of <|image_pad|> tokens (>= 1)

  static ChatPart make_text(std::string t);
  static ChatPart make_image(int64_t n_tokens);
};

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::vector<ChatPart> content;

  static ChatMessage text(std::string role, std::string text);
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  bool add_vision_id = false;  // "Picture k: " before each image (k counts over all messages)
};

// The rendered prompt, image pads expanded. Throws pvm::Error on unsupported input.
std::string render_chat(const std::vector<ChatMessage>& messages, const ChatTemplateOptions& opt = {});

struct ChatImageSpan {
  size_t first_pad = 0;  // index in ids of the first <|image_pad|> of this image
  int64_t n_pads = 0;
};

struct ChatEncoding {
  std::vector<int32_t> ids;
  std::vector<int32_t> stop_ids;     // <|im_end|>, <|endoftext|> (looked up by text)
  std::vector<ChatImageSpan> images;  // in order of appearance
};

// Render and tokenize. Throws pvm::Error (naming the tokenizer file) if a token the template
// needs (<|im_start|>, <|im_end|>, <|vision_start|>, <|image_pad|>, <|vision_end|>) is missing.
ChatEncoding encode_chat(const Tokenizer& tok, const std::vector<ChatMessage>& messages,
                         const ChatTemplateOptions& opt = {});

// Ids of <|im_end|> and <|endoftext|> (those present; throws if neither is).
std::vector<int32_t> chat_stop_ids(const Tokenizer& tok);

}  // namespace pvm
