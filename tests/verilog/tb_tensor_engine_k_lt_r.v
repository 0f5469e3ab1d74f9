// Run by tests/test_tensor_engine.py::test_icarus_k_below_rows_is_x_free on the Verilog of
// `systolica verilog --block tensor_engine --rows 4 --cols 2`.
// K=2 < R=4 matmul from reset: W rows [1,2],[3,4]; a = [5,6,(7,8 ignored: rows >= K)].
// Expected result [5*1+6*3, 5*2+6*4] = [23, 34], and no X anywhere in the payload.
module tb;
  reg clk = 0, rst = 1;
  reg [44:0] mv = 0; reg mv_valid = 0; wire mv_ready;
  reg [16:0] w = 0; reg w_valid = 0; wire w_ready;
  wire [75:0] res; wire res_valid; wire busy, ovf;
  systolica_tensor_engine dut(.clk(clk), .rst(rst),
    .moving__payload(mv), .moving__valid(mv_valid), .moving__ready(mv_ready),
    .weights__payload(w), .weights__valid(w_valid), .weights__ready(w_ready),
    .result__payload(res), .result__valid(res_valid), .result__ready(1'b1),
    .busy(busy), .weights_overflow(ovf), .clear_errors(1'b0));
  always #5 clk = ~clk;
  integer cycles = 0, got = 0;
  always @(posedge clk) begin
    cycles <= cycles + 1;
    if (cycles > 200) begin $display("FAIL timeout"); $finish; end
    if (!rst && cycles > 4 && (res_valid === 1'bx) || !rst && cycles > 4 && (busy === 1'bx || ovf === 1'bx || mv_ready === 1'bx || w_ready === 1'bx)) begin
      $display("FAIL X on a control output at cycle %0d", cycles); $finish;
    end
    if (res_valid) begin
      if (^res[63:0] === 1'bx) begin $display("FAIL X in result %b", res[63:0]); $finish; end
      if (res[31:0] !== 32'd23 || res[63:32] !== 32'd34) begin
        $display("FAIL result %0d %0d", res[31:0], res[63:32]); $finish; end
      $display("PASS result %0d %0d", res[31:0], res[63:32]); $finish;
    end
  end
  initial begin
    repeat (2) @(posedge clk);
    rst <= 0;
    @(posedge clk);
    w <= {1'b0, 8'd2, 8'd1}; w_valid <= 1;
    @(posedge clk); while (!w_ready) @(posedge clk);
    w <= {1'b1, 8'd4, 8'd3};
    @(posedge clk); while (!w_ready) @(posedge clk);
    w_valid <= 0;
    mv <= {12'd0, 1'b1, 8'd8, 8'd7, 8'd6, 8'd5}; mv_valid <= 1;
    @(posedge clk); while (!mv_ready) @(posedge clk);
    mv_valid <= 0;
  end
endmodule
