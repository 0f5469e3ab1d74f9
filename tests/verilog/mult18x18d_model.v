// A behavioural model of the Lattice ECP5 MULT18X18D, written from the ECP5 sysDSP usage guide
// (TN1267), for the subset hdl/multiplier.py uses: A, B and output registers on CLK0 with any
// of CE0..CE3, no pipeline register, no C input, no shifting (SOURCEA/SOURCEB = 0), no reset.
// Used by tests/test_tensor_engine_dsp.py to simulate the ECP5 netlist of the tensor engine.
module MULT18X18D #(
  parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0",
  parameter REG_INPUTA_RST = "RST0",
  parameter REG_INPUTB_CLK = "NONE", parameter REG_INPUTB_CE = "CE0",
  parameter REG_INPUTB_RST = "RST0",
  parameter REG_INPUTC_CLK = "NONE", parameter REG_INPUTC_CE = "CE0",
  parameter REG_INPUTC_RST = "RST0",
  parameter REG_PIPELINE_CLK = "NONE", parameter REG_PIPELINE_CE = "CE0",
  parameter REG_PIPELINE_RST = "RST0",
  parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0",
  parameter REG_OUTPUT_RST = "RST0",
  parameter CLK0_DIV = "ENABLED", parameter CLK1_DIV = "ENABLED",
  parameter CLK2_DIV = "ENABLED", parameter CLK3_DIV = "ENABLED",
  parameter HIGHSPEED_CLK = "NONE", parameter GSR = "ENABLED",
  parameter CAS_MATCH_REG = "FALSE", parameter SOURCEB_MODE = "B_SHIFT",
  parameter MULT_BYPASS = "DISABLED", parameter RESETMODE = "SYNC"
) (
  input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
  input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
  input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
  input CLK0, CLK1, CLK2, CLK3, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
  output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
  output P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
  wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
  wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
  wire [3:0] ce = {CE3, CE2, CE1, CE0};
  function ce_of(input [8*4-1:0] name, input [3:0] ces);
    ce_of = name == "CE0" ? ces[0] : name == "CE1" ? ces[1] : name == "CE2" ? ces[2] : ces[3];
  endfunction
  reg [17:0] a_reg, b_reg;
  reg sa_reg, sb_reg;
  always @(posedge CLK0) begin
    if (ce_of(REG_INPUTA_CE, ce)) begin a_reg <= a; sa_reg <= SIGNEDA; end
    if (ce_of(REG_INPUTB_CE, ce)) begin b_reg <= b; sb_reg <= SIGNEDB; end
  end
  wire [17:0] a_use = REG_INPUTA_CLK == "NONE" ? a : a_reg;
  wire [17:0] b_use = REG_INPUTB_CLK == "NONE" ? b : b_reg;
  wire sa = REG_INPUTA_CLK == "NONE" ? SIGNEDA : sa_reg;
  wire sb = REG_INPUTB_CLK == "NONE" ? SIGNEDB : sb_reg;
  wire signed [18:0] a_ext = {sa & a_use[17], a_use};
  wire signed [18:0] b_ext = {sb & b_use[17], b_use};
  wire signed [37:0] product = a_ext * b_ext;
  reg [35:0] p_reg;
  always @(posedge CLK0) if (ce_of(REG_OUTPUT_CE, ce)) p_reg <= product[35:0];
  wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? product[35:0] : p_reg;
  assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19,
          P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = p;
endmodule
