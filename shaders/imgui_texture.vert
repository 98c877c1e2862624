#version 450
// A textured rectangle drawn from an ImGui draw callback (ImGui 1.86's Vulkan backend binds
// only its font texture): four strip vertices made from the push constants, no vertex
// buffer. rect is (x0, y0, x1, y1) in normalised device coordinates, uv likewise.
layout(push_constant) uniform Quad { vec4 rect; vec4 uv; } q;
layout(location = 0) out vec2 v_uv;

void main() {
  const vec2 corner = vec2(gl_VertexIndex & 1, gl_VertexIndex >> 1);
  gl_Position = vec4(mix(q.rect.xy, q.rect.zw, corner), 0.0, 1.0);
  v_uv = mix(q.uv.xy, q.uv.zw, corner);
}
